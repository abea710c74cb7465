"""Run the PyPI package `milvus` ("embedded Milvus") as a standalone server on the ports we choose.

Run it with the python of the venv that holds the version to run (scripts/milvus-venvs.sh):

    $VENV/bin/python scripts/milvus_server.py --data DIR --proxy-port P --etcd-port E --metrics-port M

Why not the package's own `milvus-server --data DIR` entry point (milvus/__init__.py, main(), in
the 2.2.16 and 2.3.5 wheels): its `--proxy-port`, `--etcd-port`, ... flags only set where a scan
for a free port *starts* (MilvusServerConfig.resolve_all_listen_ports -> resolve_port), so a busy
port silently becomes the next one; and the HTTP port of /healthz (METRICS_PORT, 9091) has no
flag at all (MilvusServer.start scans from 9091). Two runs side by side would then race for the
same ports and a target could point at the wrong server. The package's classes take exact ports
when they are passed as MilvusServerConfig(**kwargs) (a port that cannot be bound raises
"set proxy_port=P, but bind failed"), so this launcher uses those, with the same config template,
binaries and environment as `milvus-server`. The internal ports (coordinators, nodes) are picked
here too (free_ports), for the same reason.

The package's `etcd_port` only fills `etcd.endpoints`, which embedded etcd does not use: the
embedded server listens where its own config says, 127.0.0.1:2379 and :2380 by default
(etcd's embed.NewConfig(), internal/util/etcd/etcd_server.go), so two servers collide there.
This launcher writes that config (configs/embedEtcd.yaml: listen/advertise client and peer
URLs) and names it in ETCD_CONFIG_PATH (the env form of `etcd.config.path`, as Milvus's own
docker-compose for embedded etcd does).

It stays in the foreground as the server's parent: on SIGTERM or SIGINT it asks Milvus to stop
(SIGTERM: Milvus stops its components in order). Neither 2.2.16 nor 2.3.5 standalone finished
that graceful stop here within 30 s (2.2.16's log ends at "Query node stop..": its query node
waits for coordinators already stopped), nor with common.gracefulStopTimeout lowered from the
template's 1800 s. So after --stop-grace seconds the launcher kills it (the package's own stop()
kills after 1 s). The procedure flushes every collection before the stop, and the embedded etcd
keeps a write-ahead log: what was flushed survives the kill (the upgrade test checks every row). When Milvus exits by itself, so does this,
with Milvus's exit status, after printing the last lines of Milvus's own logs (the product's
reason). Everything it says goes to stdout, one line each, prefixed "launcher:".
"""

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import milvus

# Ports of the template (milvus/data/config.yaml.template) that only Milvus's own components use.
INTERNAL_PORTS = [
    "proxy_internal_port",
    "root_coord_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
]


class Config(milvus.MilvusServerConfig):
    """The package's config, binding its port checks as Milvus's own listeners do."""

    def try_bind_port(self, port):
        # The package binds without SO_REUSEADDR, so a port the previous server left in
        # TIME_WAIT (its health and client connections) looks taken for a minute after a stop
        # and the scan moves on. Milvus's listeners (Go) set SO_REUSEADDR: check the same way.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return sock
        except (OSError, OverflowError, ValueError):
            sock.close()
            return None


# Picks of the internal ports before giving up (see main).
START_ATTEMPTS = 3


def say(text):
    print(f"launcher: {text}", flush=True)


def free_ports(count, exclude):
    """`count` distinct free ports below the kernel's ephemeral range (32768-60999 by default),
    none of `exclude` (the ports we were given, which their owner may have released for us a
    moment ago), held together so they differ, then released. A port the kernel hands out (bind
    to 0) can be taken a moment later as the source port of any outgoing connection; these
    cannot."""
    socks, ports = [], []
    try:
        for port in random.sample(range(20000, 32000), 200):
            if port in exclude:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
            if len(ports) == count:
                return ports
        raise RuntimeError(f"no {count} free ports between 20000 and 32000")
    finally:
        for s in socks:
            s.close()


def last_words(data_dir, count=3):
    """Why Milvus stopped, in its own words: the last ERROR/FATAL/panic lines of its logs
    (without their stack traces), else the last lines."""
    telling, tail = [], []
    for name in ("milvus-stdout.log", "milvus-stderr.log"):
        try:
            with open(os.path.join(data_dir, "logs", name), "r", encoding="utf-8", errors="replace") as f:
                lines = [line.rstrip() for line in f if line.strip()]
        except OSError:
            continue
        tail = lines[-count:] or tail
        for line in lines:
            if "[ERROR]" in line or "[FATAL]" in line or line.startswith(("panic:", "fatal error:")):
                telling.append(line.split(" [stack=")[0][:400])
    return telling[-count:] or tail


def write_etcd_config(args):
    """The embedded etcd's own config (etcd's YAML config-file keys), on our ports."""
    client = f"http://127.0.0.1:{args.etcd_port}"
    peer = f"http://127.0.0.1:{args.etcd_peer_port}"
    path = os.path.join(os.path.abspath(args.data), "configs", "embedEtcd.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            f"listen-client-urls: {client}\n"
            f"advertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\n"
            f"initial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n"
        )
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the server's base directory")
    p.add_argument("--proxy-port", type=int, required=True, help="gRPC (clients), default 19530")
    p.add_argument("--etcd-port", type=int, required=True, help="embedded etcd, default 2379")
    p.add_argument("--etcd-peer-port", type=int, required=True, help="its peer port, default 2380")
    p.add_argument("--metrics-port", type=int, required=True, help="/healthz, default 9091")
    p.add_argument("--stop-grace", type=float, default=10.0, help="seconds before SIGKILL")
    args = p.parse_args()

    os.environ["ETCD_CONFIG_PATH"] = write_etcd_config(args)
    given = {args.proxy_port, args.etcd_port, args.etcd_peer_port, args.metrics_port}
    for attempt in range(1, START_ATTEMPTS + 1):
        known = milvus.default_server.config.configurable_items
        internal = [k for k in INTERNAL_PORTS if k in known]
        ports = dict(zip(internal, free_ports(len(internal), exclude=given)))
        config = Config(data_dir=args.data, proxy_port=args.proxy_port, **ports)
        config.set("etcd_port", args.etcd_port)
        server = milvus.MilvusServer(config, wait_for_started=False)
        server.webservice_port = args.metrics_port
        try:
            server.start()
            break
        except (RuntimeError, OSError) as e:
            # An internal port we picked can be taken by another process (another server on
            # this machine picks from the same range) between our pick and the package's bind:
            # "set index_coord_port=31611, but bind failed". Those are ours to choose again;
            # a port we were given is not.
            taken = re.search(r"set (\w+)=(\d+), but bind failed", str(e))
            if taken and taken.group(1) in internal and attempt < START_ATTEMPTS:
                say(
                    f"{taken.group(1)} {taken.group(2)} was taken after we picked it "
                    f"(attempt {attempt} of {START_ATTEMPTS}): picking fresh internal ports"
                )
                continue
            say(f"milvus {milvus.__version__} did not start: {e}")
            return 1
    proc = server.server_proc
    if server.webservice_port != args.metrics_port:
        # MilvusServer.start scanned past a busy port: refuse rather than serve elsewhere.
        say(f"port {args.metrics_port} is taken (the package chose {server.webservice_port})")
        proc.kill()
        proc.wait()
        return 1
    say(
        f"milvus {milvus.__version__} pid {proc.pid}: grpc 127.0.0.1:{args.proxy_port}, "
        f"healthz 127.0.0.1:{args.metrics_port}, etcd 127.0.0.1:{args.etcd_port} "
        f"(peer {args.etcd_peer_port}), data {args.data}"
    )

    stopping = []

    def on_signal(signum, _frame):
        if not stopping:
            stopping.append(time.monotonic())
            say(f"signal {signum}: stopping milvus (pid {proc.pid})")
            proc.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:
        try:
            code = proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        if stopping and time.monotonic() - stopping[0] > args.stop_grace:
            say(f"milvus did not finish its graceful stop within {args.stop_grace:.0f} s: killed")
            proc.kill()
    if stopping:
        say(f"milvus stopped (exit {code})")
        return 0
    say(f"milvus exited by itself (exit {code}); in its logs:")
    for line in last_words(args.data):
        say(line)
    return code or 1


if __name__ == "__main__":
    sys.exit(main())
