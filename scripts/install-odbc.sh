#!/usr/bin/env bash
# Installs unixODBC's `isql` and the MariaDB ODBC driver (Debian's odbc-mariadb) if either is
# missing. Idempotent. tests/bi_odbc.rs reads the appliance through them, as a BI tool would.
set -euo pipefail

driver="/usr/lib/$(uname -m)-linux-gnu/odbc/libmaodbc.so"
if command -v isql >/dev/null 2>&1 && [ -e "$driver" ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends unixodbc odbc-mariadb >/dev/null
