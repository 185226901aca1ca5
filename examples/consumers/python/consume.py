#!/usr/bin/env python3
"""Reads hostledger's event log with Python's Kafka client and an Avro implementation that is
not hostledger's (confluent-kafka and fastavro), and prints each event as one JSON line.

Each message is Avro single-object encoded: C3 01, the CRC-64-AVRO fingerprint of the writer
schema's Parsing Canonical Form (8 bytes), the datum. The writer schema is found by that
fingerprint among the .avsc files of --schemas, exactly as the Avro specification describes;
no schema registry is needed.

    pip install confluent-kafka fastavro
    python3 consume.py --bootstrap 127.0.0.1:19092 --schemas ../../../schemas/avro

Reads from the beginning (a new consumer group each run, nothing committed) with
isolation.level=read_committed, so events of aborted fetcher transactions are never seen,
and stops after --idle-secs without a new message (or never, with --follow). A message it
cannot decode is printed as {"poison": REASON, ...} and reading goes on.

Mutual TLS: --ca, --cert and --key (default: $HOSTLEDGER_KAFKA_CA_FILE, $HOSTLEDGER_KAFKA_CERT_FILE,
$HOSTLEDGER_KAFKA_KEY_FILE, which `scripts/stack env` sets); a reader identity may consume in
groups named hostledger-reader-..., which is what this uses.
"""

import argparse
import glob
import io
import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

MARKER = b"\xc3\x01"
HEADER_LEN = 10


def load_schemas(directory):
    """Every writer schema of the directory, by the 8 bytes of its fingerprint."""
    schemas = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.avsc"))):
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        key = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        schemas[key] = (os.path.basename(path), parse_schema(schema))
    if not schemas:
        sys.exit(f"error: no .avsc files in {directory}")
    return schemas


def micros(value):
    """timestamp-micros as fastavro returns it (an aware datetime) back to microseconds."""
    if hasattr(value, "timestamp"):
        delta = value - value.fromtimestamp(0, value.tzinfo)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return value


def decode(schemas, payload):
    """The event in one message, or the reason it is not one."""
    if payload is None or len(payload) < HEADER_LEN:
        return None, "shorter than the single-object header"
    if payload[:2] != MARKER:
        return None, "no single-object marker"
    known = schemas.get(payload[2:HEADER_LEN])
    if known is None:
        return None, f"unknown writer schema fingerprint {payload[2:HEADER_LEN].hex()}"
    name, schema = known
    try:
        event = schemaless_reader(io.BytesIO(payload[HEADER_LEN:]), schema)
    except Exception as error:  # fastavro raises several kinds; all mean "not this schema"
        return None, f"invalid datum for {name}: {error}"
    event["observed_at"] = micros(event["observed_at"])
    return event, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("HOSTLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--topic", default="hostledger.host-events")
    parser.add_argument("--schemas", required=True, help="directory of the .avsc writer schemas")
    parser.add_argument("--idle-secs", type=float, default=5.0, help="stop after this long without a message")
    parser.add_argument("--follow", action="store_true", help="never stop")
    parser.add_argument("--ca", default=os.environ.get("HOSTLEDGER_KAFKA_CA_FILE"), help="PEM CA of the brokers (TLS)")
    parser.add_argument("--cert", default=os.environ.get("HOSTLEDGER_KAFKA_CERT_FILE"), help="PEM client certificate")
    parser.add_argument("--key", default=os.environ.get("HOSTLEDGER_KAFKA_KEY_FILE"), help="PEM client key")
    args = parser.parse_args()
    tls = {}
    if args.ca or args.cert:
        tls["security.protocol"] = "ssl"
    for option, value in (("ssl.ca.location", args.ca), ("ssl.certificate.location", args.cert), ("ssl.key.location", args.key)):
        if value:
            tls[option] = value

    schemas = load_schemas(args.schemas)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"hostledger-reader-example-python-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        **tls,
    })
    consumer.subscribe([args.topic])
    last = time.monotonic()
    try:
        while args.follow or time.monotonic() - last < args.idle_secs:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    print(f"warning: {message.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            event, reason = decode(schemas, message.value())
            line = {
                "key": (message.key() or b"").decode("utf-8", "replace"),
                "partition": message.partition(),
                "offset": message.offset(),
            }
            if event is None:
                line["poison"] = reason
            else:
                line["event"] = event
            print(json.dumps(line, ensure_ascii=False), flush=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
