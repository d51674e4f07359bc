#!/usr/bin/env bash
# Installs the MariaDB server binary (Debian's mariadb-server) if no MySQL-compatible server is
# on the PATH. Idempotent. The appliance runs it as a child with a private data directory, so
# the system service is stopped and disabled right after the install.
set -euo pipefail

if command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 \
  || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Keep the package from starting its own server on the default port and socket.
$SUDO mkdir -p /usr/sbin
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/dev/null
