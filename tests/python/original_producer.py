"""The original design's producer: each row of a CSV file, as csv.DictReader gives it (every
value a string), sent as json.dumps(row) with kafka-python, one send per row, no key.

    python3 original_producer.py BOOTSTRAP TOPIC FILE.csv USER PASSWORD

The one change: it logs in with SASL/SCRAM-SHA-512, as the appliance's broker requires.
"""
import csv
import json
import sys

from kafka import KafkaProducer


def main() -> int:
    bootstrap, topic, path, user, password = sys.argv[1:6]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all",
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=user, sasl_plain_password=password,
    )
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            producer.send(topic, json.dumps(row).encode())
    producer.flush(timeout=60)
    producer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
