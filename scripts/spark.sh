#!/usr/bin/env bash
# Runs tickpipe's Spark Structured Streaming processor (spark/tickpipe_job.py) with spark-submit
# from the install of scripts/install-spark.sh (installed first if missing), on local[2] unless
# SPARK_MASTER names a cluster (spark://host:7077, yarn, k8s://…). Arguments go to the job:
#   scripts/spark.sh --state-dir .tickpipe [--tickpipe target/release/tickpipe] [--drain]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
home="$("$here/install-spark.sh")"
# spark-submit finds Spark (pyspark's own jars) through the venv's Python.
export PATH="$home/venv/bin:$PATH" PYSPARK_PYTHON="$home/venv/bin/python" \
  PYSPARK_DRIVER_PYTHON="$home/venv/bin/python"
jars="$(find "$home/jars" -name '*.jar' | sort | paste -sd, -)"
exec "$home/venv/bin/spark-submit" --master "${SPARK_MASTER:-local[2]}" \
  --conf spark.ui.enabled=false --conf spark.sql.shuffle.partitions=2 \
  --jars "$jars" "$here/../spark/tickpipe_job.py" "$@"
