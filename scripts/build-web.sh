#!/usr/bin/env bash
# Vendors the dashboard's charting library: installs web/'s locked npm packages and copies the
# standalone build of TradingView Lightweight Charts with its license files into web/vendor/,
# which is committed so that the Rust build (include_bytes!) never needs npm. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../web"

npm ci --no-audit --no-fund --loglevel=error >/dev/null

pkg=node_modules/lightweight-charts
mkdir -p vendor
cp "$pkg/dist/lightweight-charts.standalone.production.js" vendor/
# Whatever license and notice files the package ships (5.2.1 ships only LICENSE).
find "$pkg" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'NOTICE*' \) \
  -exec cp {} vendor/ \;
