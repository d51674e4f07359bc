#!/usr/bin/env bash
# Installs the Python Kafka clients the interoperability tests drive (pinned): confluent-kafka
# (librdkafka, whose default partitioner is CRC32, not Kafka's murmur2) and kafka-python (what
# the original design's producer used). Idempotent.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
if "$PYTHON" - 2>/dev/null <<'PY'
import sys
import confluent_kafka, kafka
sys.exit(confluent_kafka.version()[0] != "2.16.1" or kafka.__version__ != "3.0.12")
PY
then
  exit 0
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  confluent-kafka==2.16.1 kafka-python==3.0.12
