"""tickpipe's Spark Structured Streaming processor.

Spark reads the appliance's topics (the ticks and the dead letters) in micro-batches; each
micro-batch goes, in Kafka order, to `tickpipe process --from-stdin`, which checks every record
with the same code as tickpipe's own processor, quarantines the refused ones with their reasons,
and commits rows, refusals and the offsets reached in one MySQL transaction per batch. Spark
starts from the offsets stored in MySQL (`pipeline_offsets`), not from a checkpoint of its own,
so the Spark job and `tickpipe process` can take turns on a topic and every record is stored
exactly once; the rollups follow from the table (the rollup stage runs in the same
`tickpipe process`).

Run it with scripts/spark.sh (which installs pyspark and the jars, and passes the appliance's
Kafka login); `--drain` stops once everything in the topics at start is committed.
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from pyspark.sql import SparkSession


def kafka_options(properties_file):
    """The Kafka client settings of a properties file (the appliance's client.properties), as
    the options of Spark's Kafka source."""
    options = {}
    with open(properties_file, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            options["kafka." + key.strip()] = value.strip()
    return options


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickpipe", default="tickpipe", help="the tickpipe binary")
    parser.add_argument("--state-dir", help="the appliance's state directory")
    parser.add_argument("--config", help="the appliance's configuration file")
    parser.add_argument(
        "--kafka-properties",
        help="Kafka client properties (default: client.properties in the state directory)",
    )
    parser.add_argument("--drain", action="store_true", help="stop once caught up")
    parser.add_argument(
        "--max-offsets-per-trigger", type=int, default=50000, help="records per micro-batch"
    )
    parser.add_argument("--trigger-seconds", type=float, default=0.5)
    parser.add_argument(
        "--started-file", help="a file created once the stream runs (for scripts and benches)"
    )
    args = parser.parse_args()

    command = [args.tickpipe]
    if args.config:
        command += ["--config", args.config]
    if args.state_dir:
        command += ["--state-dir", args.state_dir]
    command += ["process", "--from-stdin", "--json"] + (["--drain"] if args.drain else [])
    # The processor dies with this job, whichever way it ends (its stdin closes).
    sink = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    handshake = sink.stdout.readline()
    if not handshake:
        sys.exit("tickpipe process --from-stdin stopped before its handshake (see its log)")
    handshake = json.loads(handshake)
    summary = []
    summary_reader = threading.Thread(
        target=lambda: summary.extend(sink.stdout.readlines()), daemon=True
    )
    summary_reader.start()

    properties = args.kafka_properties or os.path.join(args.state_dir or ".tickpipe", "client.properties")
    spark = SparkSession.builder.appName("tickpipe").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    starting = handshake["starting_offsets"]
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", handshake["bootstrap"])
        .option("subscribe", ",".join(sorted(starting)))
        .option("startingOffsets", json.dumps(starting))
        # Records of aborted transactions are not records (tickpipe's own reader skips them
        # too); a start offset the broker no longer has fails the query instead of skipping.
        .option("kafka.isolation.level", "read_committed")
        .option("failOnDataLoss", "true")
        .option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
    )
    for key, value in kafka_options(properties).items():
        reader = reader.option(key, value)
    records = reader.load().select("topic", "partition", "offset", "value")

    def hand_over(batch, batch_id):
        # Each Spark partition of a Kafka source is one Kafka partition's offset range, in
        # order: collected as they are, each partition's records come in offset order (the
        # processor skips what it was already handed). At most --max-offsets-per-trigger.
        try:
            write_batch(batch.collect(), batch_id)
        except BrokenPipeError:
            # The processor has exited (drained, or failed): the loop below ends the job
            # with its exit code.
            pass

    def write_batch(rows, batch_id):
        for row in rows:
            value = None if row.value is None else base64.b64encode(row.value).decode("ascii")
            line = {
                "topic": row.topic,
                "partition": row.partition,
                "offset": row.offset,
                "value": value,
            }
            sink.stdin.write(json.dumps(line) + "\n")
        sink.stdin.write(json.dumps({"end": batch_id}) + "\n")
        sink.stdin.flush()

    # A checkpoint only for this run: where to resume comes from MySQL.
    checkpoint = tempfile.mkdtemp(prefix="tickpipe-spark-")
    query = (
        records.writeStream.foreachBatch(hand_over)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .start()
    )
    if args.started_file:
        open(args.started_file, "w", encoding="utf-8").close()
    try:
        # Drained (or failed): the processor exits, and the job with it.
        while query.isActive and sink.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if query.isActive:
            query.stop()
        try:
            sink.stdin.close()
        except BrokenPipeError:
            pass
        code = sink.wait()
        summary_reader.join(timeout=10)
        shutil.rmtree(checkpoint, ignore_errors=True)
    if query.exception() is not None:
        print(f"the Spark query failed: {query.exception()}", file=sys.stderr)
        code = code or 1
    for line in summary:
        print(line, end="")
    sys.exit(code)


if __name__ == "__main__":
    main()
