"""Data checks for the real-Milvus upgrade (procedures/milvus-standalone.toml), through pymilvus.

Run it with the python of the client venv (scripts/milvus-venvs.sh: pymilvus 2.2.17, which talks
to both 2.2.16 and 2.3.5). Every command takes --uri HOST:PORT (Milvus's gRPC port) and prints
one line per finding; the exit status says whether the check holds (0), does not (1), or could
not be made (2: no connection, bad input). The first line is the reason, so a flightdeck gate
that fails shows it.

  version --expect V        the server's version (`v2.2.16-lite` -> 2.2.16); 1 unless it is V.
                            --json prints {"version": ...} for a probe's facts.
  write --collection C --rows N
                            a known data set: N rows (id, tag, 8-dim vector from a fixed seed),
                            flushed, indexed (IVF_FLAT, L2), loaded. Refuses an existing C.
  record --out FILE         flush every collection, then record per collection: loaded or not,
                            row count, and a digest of its rows (ids and scalar fields, sorted).
  load --recorded FILE      load every collection recorded as loaded (what a restart does not
                            do on its own: see docs/real-milvus.md).
  verify --recorded FILE    every recorded collection present, loaded if it was, with the
                            recorded row count and rows; one line per collection.
  search --recorded FILE    every loaded recorded collection answers a search: the vector of
                            its first row finds that row first.
  writable                  the proxy's CheckHealth RPC, printed as one JSON line in grpcurl's
                            field names ({"isHealthy", "reasons", "quotaStates"}); 1 when the
                            quota center denies writes (DenyToWrite), which /healthz never shows.
  rows --collection C       the rows (ids and scalar fields) as JSON, for tests to compare.
  count --collection C      how many rows a query of C returns.
"""

import argparse
import hashlib
import json
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

DIM = 8
SEED = 7
# Milvus's cap on a query's result window (queryNode maxQueryResultWindow / topK, 16384).
QUERY_WINDOW = 16384


class CheckFailed(Exception):
    """The check was made and does not hold (exit 1)."""


def connect(uri, timeout):
    host, _, port = uri.rpartition(":")
    connections.connect(alias="default", host=host or "127.0.0.1", port=port, timeout=timeout)


def server_version():
    v = utility.get_server_version()
    # The lite builds say `v2.2.16-lite`.
    return v.lstrip("v").split("-")[0]


def vectors(rows):
    rng = random.Random(SEED)
    return [[rng.random() for _ in range(DIM)] for _ in range(rows)]


def cmd_version(args):
    v = server_version()
    if args.json:
        print(json.dumps({"version": v}))
    if args.expect and v != args.expect:
        raise CheckFailed(f"Milvus at {args.uri} runs {v}, not {args.expect}")
    if not args.json:
        print(f"Milvus at {args.uri} runs {v}")


def cmd_write(args):
    if utility.has_collection(args.collection):
        raise CheckFailed(f"collection {args.collection} already exists")
    fields = [
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("tag", DataType.VARCHAR, max_length=32),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
    ]
    c = Collection(args.collection, CollectionSchema(fields, description="flightdeck known data"))
    ids = list(range(args.rows))
    c.insert([ids, [f"tag{i % 10}" for i in ids], vectors(args.rows)])
    c.flush()
    c.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 16}})
    c.load()
    print(f"{args.collection}: {c.num_entities} rows written, indexed, loaded")


def scalar_fields(c):
    return [f.name for f in c.schema.fields if f.dtype not in (DataType.FLOAT_VECTOR, DataType.BINARY_VECTOR)]


def primary(c):
    return next(f for f in c.schema.fields if f.is_primary)


def rows_of(c):
    """Every row's scalar fields, sorted by primary key (collections up to QUERY_WINDOW rows)."""
    pk = primary(c)
    expr = f"{pk.name} >= {-(2**63 - 1)}" if pk.dtype == DataType.INT64 else f'{pk.name} != ""'
    rows = c.query(expr, output_fields=scalar_fields(c), limit=QUERY_WINDOW)
    return sorted(rows, key=lambda r: r[pk.name])


def digest(rows):
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_loaded(name):
    return str(utility.load_state(name)).endswith("Loaded")


def cmd_record(args):
    collections = {}
    for name in sorted(utility.list_collections()):
        c = Collection(name)
        # Rows still in growing segments are not in num_entities until flushed.
        c.flush()
        entry = {"rows": c.num_entities, "loaded": is_loaded(name)}
        if entry["loaded"] and entry["rows"] <= QUERY_WINDOW:
            entry["digest"] = digest(rows_of(c))
        collections[name] = entry
        print(f"{name}: {entry['rows']} rows, {'loaded' if entry['loaded'] else 'not loaded'}")
    if not collections:
        print("no collection")
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"version": server_version(), "collections": collections}, f, indent=1)


def read_recorded(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)["collections"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckFailed(f"no recorded row counts in {path}: {e}") from e


def cmd_load(args):
    for name, want in read_recorded(args.recorded).items():
        if not want["loaded"]:
            print(f"{name}: was not loaded, left so")
            continue
        if is_loaded(name):
            print(f"{name}: already loaded")
            continue
        Collection(name).load(timeout=args.timeout)
        print(f"{name}: loaded")


def cmd_verify(args):
    recorded = read_recorded(args.recorded)
    present = set(utility.list_collections())
    problems, lines = [], []
    for name, want in sorted(recorded.items()):
        if name not in present:
            problems.append(f"{name}: missing")
            continue
        try:
            line, ok = verify_one(name, want)
        except MilvusException as e:
            # Right after a restart 2.3.5 says Loaded but queries fail: report both, its words.
            line, ok = f"{name}: load state {utility.load_state(name)}, but: {e.message}", False
        (lines if ok else problems).append(line)
    if problems:
        raise CheckFailed("; ".join(problems))
    for line in lines:
        print(line)


def verify_one(name, want):
    """One collection against its record: (what was seen, whether it holds)."""
    c = Collection(name)
    rows = c.num_entities
    loaded = is_loaded(name)
    state = "loaded" if loaded else f"not loaded ({utility.load_state(name)})"
    line = f"{name}: {state}, {rows} rows (recorded {want['rows']})"
    if (want["loaded"] and not loaded) or rows != want["rows"]:
        return line, False
    if "digest" in want:
        got = digest(rows_of(c))
        line += f", rows digest {got} (recorded {want['digest']})"
        if got != want["digest"]:
            return line, False
    return line, True


def cmd_search(args):
    """Every loaded recorded collection answers a search: its first row finds itself first."""
    searched = 0
    for name, want in sorted(read_recorded(args.recorded).items()):
        if not want["loaded"] or want["rows"] == 0:
            continue
        c = Collection(name)
        pk = primary(c)
        vec = next(f for f in c.schema.fields if f.dtype == DataType.FLOAT_VECTOR)
        first = c.query(f"{pk.name} >= {-(2**63 - 1)}" if pk.dtype == DataType.INT64 else f'{pk.name} != ""',
                        output_fields=[vec.name], limit=1)[0]
        index = next((i for i in c.indexes if i.field_name == vec.name), None)
        metric = (index.params.get("metric_type") if index else None) or "L2"
        hits = c.search([first[vec.name]], vec.name, {"metric_type": metric, "params": {"nprobe": 16}}, limit=3)[0]
        ids = list(hits.ids)
        if not ids or ids[0] != first[pk.name]:
            raise CheckFailed(f"{name}: a search for row {first[pk.name]} answered {ids}")
        print(f"{name}: a search for row {first[pk.name]} answered {ids}")
        searched += 1
    if searched == 0:
        print("no loaded collection to search")


def cmd_writable(args):
    """Whether Milvus takes writes: MilvusService.CheckHealth (milvus-proto milvus.proto) lists
    DenyToWrite in quota_states while the quota center denies writes (a full disk, memory, a
    time-tick lag, quotaAndLimits.limitWriting.forceDeny), its error strings in `reasons`, while
    isHealthy stays true (milvus-io/milvus v2.2.16 internal/proxy/impl.go CheckHealth,
    multi_rate_limiter.go GetQuotaStates). pymilvus 2.2.17 has the RPC in its generated stub but
    no public call for it, so this goes through the connection's stub."""
    from pymilvus.grpc_gen import milvus_pb2

    stub = connections._fetch_handler("default")._stub  # pylint: disable=protected-access
    r = stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=args.timeout)
    if r.status.error_code != 0:
        raise CheckFailed(f"CheckHealth failed: {r.status.reason}")
    states = [milvus_pb2.QuotaState.Name(s) for s in r.quota_states]
    print(json.dumps({"isHealthy": r.isHealthy, "reasons": list(r.reasons), "quotaStates": states}))
    # One JSON line and the exit status: flightdeck quotes `/reasons/0` when it fails.
    return 1 if "DenyToWrite" in states else 0


def cmd_rows(args):
    print(json.dumps(rows_of(Collection(args.collection)), sort_keys=True))


def cmd_count(args):
    print(len(rows_of(Collection(args.collection))))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", required=True, help="HOST:PORT of Milvus's gRPC port")
    p.add_argument("--timeout", type=float, default=20.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("version")
    s.add_argument("--expect")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("write")
    s.add_argument("--collection", required=True)
    s.add_argument("--rows", type=int, required=True)
    s = sub.add_parser("record")
    s.add_argument("--out", required=True)
    for name in ("load", "verify", "search"):
        s = sub.add_parser(name)
        s.add_argument("--recorded", required=True)
    for name in ("rows", "count"):
        s = sub.add_parser(name)
        s.add_argument("--collection", required=True)
    sub.add_parser("writable")
    args = p.parse_args()
    try:
        connect(args.uri, args.timeout)
        # A command returns its exit status when it prints its own verdict (writable).
        if globals()[f"cmd_{args.cmd}"](args):
            return 1
    except CheckFailed as e:
        print(e)
        return 1
    except MilvusException as e:
        # The product's own words (code and message).
        print(f"Milvus at {args.uri}: {e}")
        return 1 if args.cmd == "verify" else 2
    except Exception as e:  # noqa: BLE001 - no connection, bad input: say so and exit 2
        print(f"{args.cmd} at {args.uri}: {type(e).__name__}: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
