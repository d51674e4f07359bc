#!/usr/bin/env bash
# Runs every test against real services. Installs what the tests need first (idempotent):
# Debian's MariaDB server, unixODBC with the MariaDB ODBC driver, Debian's Chromium with
# Playwright (npm), the Python Kafka client confluent-kafka (PyPI), Apache Kafka's jars (from
# Maven Central), and pyspark with Spark's Kafka source for the Spark job (PyPI, Maven Central).
#   scripts/test.sh                 all tests
#   scripts/test.sh --soak          also the long variants (minutes)
#   scripts/test.sh <cargo args>    e.g. scripts/test.sh --test pipeline
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-mariadb.sh
scripts/install-odbc.sh
scripts/install-browser.sh
scripts/install-python-clients.sh
scripts/fetch-kafka.sh >/dev/null
scripts/install-spark.sh >/dev/null

if [ "${1:-}" = "--soak" ]; then
  shift
  cargo test --locked "$@" -- --include-ignored --nocapture
else
  cargo test --locked "$@"
fi
