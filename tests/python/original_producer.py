"""The original design's producer: each row of a CSV file, as csv.DictReader gives it (every
value a string), sent as json.dumps(row) with kafka-python, one send per row, no key.

    python3 original_producer.py BOOTSTRAP TOPIC FILE.csv
"""
import csv
import json
import sys

from kafka import KafkaProducer


def main() -> int:
    bootstrap, topic, path = sys.argv[1], sys.argv[2], sys.argv[3]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            producer.send(topic, json.dumps(row).encode())
    producer.flush(timeout=60)
    producer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
