#!/usr/bin/env bash
# The demo: installs what the appliance needs (idempotent), builds tickpipe, and runs
# `tickpipe up`: Kafka and MariaDB start, the sample CSVs in data/ stream into
# stock_market.stock_data, then live ticks go on. Ctrl-C stops everything. Extra arguments go to `tickpipe up`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-mariadb.sh
scripts/fetch-kafka.sh >/dev/null

exec cargo run --release --locked -- up "$@"
