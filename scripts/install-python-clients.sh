#!/usr/bin/env bash
# Installs the Python Kafka clients the interoperability tests drive (pinned): confluent-kafka
# (librdkafka, whose default partitioner is CRC32, not Kafka's murmur2). Idempotent.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
wanted="confluent-kafka==2.16.1"
if "$PYTHON" -c 'import confluent_kafka, sys; sys.exit(confluent_kafka.version()[0] != "2.16.1")' 2>/dev/null; then
  exit 0
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$wanted"
