#!/usr/bin/env bash
# Installs what the dashboard's browser test needs: Debian's Chromium and web/'s locked npm
# packages (playwright-core drives the system browser; it downloads no browser of its own).
# Idempotent and quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [ ! -d web/node_modules/playwright-core ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
