#!/usr/bin/env bash
# Puts Apache Kafka's jars in a cache directory and prints that directory's lib/ path.
# Idempotent: a complete cache is reused. With KAFKA_HOME set (an unpacked Kafka
# distribution), prints $KAFKA_HOME/libs and fetches nothing.
# The jars go to ${XDG_CACHE_HOME:-~/.cache}/tickpipe/kafka-<version>/lib, where tickpipe looks.
set -euo pipefail

if [ -n "${KAFKA_HOME:-}" ]; then
  [ -d "$KAFKA_HOME/libs" ] || { echo "KAFKA_HOME=$KAFKA_HOME has no libs/ directory" >&2; exit 1; }
  echo "$KAFKA_HOME/libs"
  exit 0
fi

here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tickpipe/kafka-$version"

if [ ! -f "$cache/.complete" ]; then
  command -v mvn >/dev/null || { echo "fetch-kafka: Maven (mvn) is needed to fetch Kafka's jars" >&2; exit 1; }
  rm -rf "$cache/lib.partial"
  mkdir -p "$cache"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$cache/lib.partial" >&2
  rm -rf "$cache/lib"
  mv "$cache/lib.partial" "$cache/lib"
  touch "$cache/.complete"
fi
echo "$cache/lib"
