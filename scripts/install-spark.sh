#!/usr/bin/env bash
# Installs what the Spark job (spark/tickpipe_job.py) needs, pinned, and prints the directory
# holding it: a Python venv with pyspark (PyPI), and Spark's Kafka source with its Kafka
# client (Maven Central) in jars/. Needs Java 17+ to run.
# Idempotent: a complete install is reused.
# Goes to ${XDG_CACHE_HOME:-~/.cache}/tickpipe/spark-<version>, where `scripts/spark.sh` looks.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' "$here/spark/pom.xml")"
home="${XDG_CACHE_HOME:-$HOME/.cache}/tickpipe/spark-$version"
PYTHON="${PYTHON:-python3}"

if [ ! -f "$home/.complete" ]; then
  command -v mvn >/dev/null || { echo "install-spark: Maven (mvn) is needed to fetch the jars" >&2; exit 1; }
  rm -rf "$home"
  mkdir -p "$home"
  command -v java >/dev/null || { echo "install-spark: Java 17+ is needed to run Spark" >&2; exit 1; }
  "$PYTHON" -m venv "$home/venv" >&2 ||
    { echo "install-spark: $PYTHON -m venv failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$home/venv/bin/pip" install --quiet --disable-pip-version-check "pyspark==$version" >&2
  # Spark's own jars (and Scala, Hadoop's client) come with pyspark: only the connector's.
  mvn -q -B -f "$here/spark/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DincludeArtifactIds=spark-sql-kafka-0-10_2.13,spark-token-provider-kafka-0-10_2.13,kafka-clients,commons-pool2 \
    -DoutputDirectory="$home/jars" >&2
  touch "$home/.complete"
fi
echo "$home"
