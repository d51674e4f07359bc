"""Sends keyed messages with confluent-kafka (librdkafka) and its default partitioner
(consistent_random: CRC32 of the key), as a Python producer of the original design would.

    python3 librdkafka_producer.py BOOTSTRAP TOPIC USER PASSWORD < lines

It logs in with SASL/SCRAM-SHA-512, as the appliance's broker requires.

Each stdin line is `key<TAB>value`. Prints `key partition` once per key, as delivered.
"""
import sys

from confluent_kafka import Producer


def main() -> int:
    bootstrap, topic, user, password = sys.argv[1:5]
    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user, "sasl.password": password,
    })
    partitions = {}
    failures = []

    def delivered(error, message):
        if error is not None:
            failures.append(str(error))
        else:
            partitions[message.key().decode()] = message.partition()

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        key, value = line.split("\t", 1)
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=delivered)
        producer.poll(0)
    if producer.flush(60) != 0:
        failures.append("messages still in flight after 60 s")
    for key, partition in sorted(partitions.items()):
        print(key, partition)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
