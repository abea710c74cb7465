#!/usr/bin/env python3
"""The post-upgrade smoke test of procedures/milvus-helm.toml, the way the Milvus docs exercise a
server ("Run Milvus using Python", milvus.io/docs/v2.3.x/example_code.md: pymilvus
examples/hello_milvus.py connects, creates a collection, inserts, flushes, builds an index, loads
and searches), on a scratch collection of its own: the user's collections are never touched.

  milvus-smoke.py write  --uri HOST:19530   drop a previous `flightdeck_smoke`, create it, insert
                                            ROWS rows (8-dim vectors from a fixed seed), flush,
                                            index (IVF_FLAT, L2), load.
  milvus-smoke.py search --uri HOST:19530   the collection holds ROWS rows and the vector of row
                                            0 finds row 0 first.
  milvus-smoke.py drop   --uri HOST:19530   drop the scratch collection.

Run it with a pymilvus that talks to the new server (the 2.2-2.4 clients share this ORM API).
The first line printed is the finding or Milvus's own error (a denied insert says "disk quota
exhausted, ...", a search right after a restart "collection not loaded"); the exit status says
whether it holds (0), does not (1), or could not be checked (2).
"""

import argparse
import random
import sys

from pymilvus import (
    Collection,
    CollectionSchema,
    DataType,
    FieldSchema,
    MilvusException,
    connections,
    utility,
)

NAME = "flightdeck_smoke"
ROWS = 100
DIM = 8
SEED = 11


def vectors():
    rng = random.Random(SEED)
    return [[rng.random() for _ in range(DIM)] for _ in range(ROWS)]


def write():
    if utility.has_collection(NAME):
        utility.drop_collection(NAME)
    fields = [
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
    ]
    c = Collection(NAME, CollectionSchema(fields, description="flightdeck smoke test"))
    c.insert([list(range(ROWS)), vectors()])
    c.flush()
    c.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 16}})
    c.load()
    print(f"{NAME}: {c.num_entities} rows inserted, flushed, indexed, loaded")


def search():
    if not utility.has_collection(NAME):
        print(f"{NAME} does not exist: run the write first")
        return 1
    c = Collection(NAME)
    if c.num_entities != ROWS:
        print(f"{NAME} holds {c.num_entities} rows, not {ROWS}")
        return 1
    hits = c.search([vectors()[0]], "vec", {"metric_type": "L2", "params": {"nprobe": 16}}, limit=1)
    found = [h.id for h in hits[0]]
    if found != [0]:
        print(f"the vector of row 0 found {found}, not [0]")
        return 1
    print(f"{NAME}: {ROWS} rows, the vector of row 0 finds row 0")
    return 0


def drop():
    if utility.has_collection(NAME):
        utility.drop_collection(NAME)
    print(f"{NAME} dropped")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("op", choices=["write", "search", "drop"])
    p.add_argument("--uri", required=True, help="HOST:PORT of Milvus's gRPC endpoint")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    host, _, port = args.uri.rpartition(":")
    try:
        connections.connect(host=host, port=port, timeout=args.timeout)
    except Exception as e:  # noqa: BLE001 - any failure to connect is "could not check"
        print(f"cannot connect to Milvus at {args.uri}: {e}")
        return 2
    try:
        if args.op == "write":
            write()
            return 0
        if args.op == "search":
            return search()
        drop()
        return 0
    except MilvusException as e:
        print(e.message or str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
