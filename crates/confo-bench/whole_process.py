"""Whole process against Python confo 0.1.6.2: the `confo` CLI and a Python script doing the
same work on the same data and the same private server, each a process of its own, timed from
outside (wall clock) with its peak resident set (the child's ru_maxrss).

    python3 crates/confo-bench/whole_process.py CONFO_BIN CONFO_SERVERS_BIN COMPAT_PYTHON [N] [RUNS]

CONFO_BIN is a release build of the CLI, CONFO_SERVERS_BIN the testkit's server starter
(`cargo build --release -p confo-cli -p confo-testkit`), COMPAT_PYTHON an interpreter with
confo 0.1.6.2 and kazoo (the test command makes target/confo-py-compat). N configurations of
about 280 bytes in one namespace (default 10,000); medians of RUNS runs (default 3; Python's
ZooKeeper persist, about 40 s at N = 10,000, runs once). Prints a Markdown table.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PY_LOAD_FILES = """
import sys
from confo.Confo import Confo
import confo.Backends as BE
c = Confo()
c.load_backend(credentials={"config_path": sys.argv[1]}, name="f", backend_type=BE.FILE_BACKEND)
c.activate_backend("f")
c.use_namespace("bench")
assert len(c.get_all()) == int(sys.argv[2])
"""

PY_ZK = """
import json, sys
from confo.Confo import Confo
import confo.Backends as BE
host, port = sys.argv[2].rsplit(":", 1)
c = Confo()
c.load_backend(credentials={"zookeeper_host": host, "zookeeper_port": port}, name="z", backend_type=BE.ZOOKEEPER_BACKEND)
c.activate_backend("z")
if sys.argv[1] == "reload":
    c.use_namespace("bench")
    assert len(c.get_all()) == int(sys.argv[3])
else:
    # (confo 0.1.6.2's ZooKeeper persist(namespace) reads the namespace again first and writes
    # what it read, so it can persist only configurations that exist: it is timed on those.)
    c.use_namespace("bench")
    for name in c.get_all():
        c.set(name, "retries", int(sys.argv[3]))
    c.persist("bench")
"""


def config(i):
    return {
        "host": f"db-{i}.internal.example.com", "port": 5432 + i % 100, "user": f"svc_{i}",
        "timeout_ms": 2500, "retries": 3, "ratio": 0.1 + i / 1e5, "enabled": i % 2 == 0,
        "tags": ["a", "b", f"t{i % 7}"], "region": "eu-west-1", "pool": {"min": 2, "max": 20},
        "note": "x" * 40,
    }


def run(argv, **kwargs):
    """Runs one process; returns (seconds, peak RSS in MB)."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors, **kwargs)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            said = errors.read().decode(errors="replace")
            raise SystemExit(f"failed ({child.returncode}): {' '.join(argv[:3])} …\n{said}")
    return elapsed, usage.ru_maxrss / 1024


def measure(runs, make_argv, setup=None):
    results = []
    for r in range(runs):
        if setup:
            setup(r)
        results.append(run(make_argv(r)))
    return statistics.median(t for t, _ in results), max(m for _, m in results)


def main():
    confo, servers, compat = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    work = tempfile.mkdtemp(prefix="confo-whole-")
    zk = subprocess.Popen([servers, "zookeeper"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "CONFO_ZK_HEAP": os.environ.get("CONFO_ZK_HEAP", "1g")})
    try:
        line = zk.stdout.readline().split()
        if line[:1] != ["READY"]:
            raise SystemExit("ZooKeeper did not start (is the zookeeper package installed?)")
        zk_address = line[1]
        root = os.path.join(work, "files")
        os.makedirs(os.path.join(root, "bench"))
        document = {"bench": {f"cfg_{i:05}": config(i) for i in range(n)}}
        for name, fields in document["bench"].items():
            with open(os.path.join(root, "bench", name + ".json"), "w") as f:
                json.dump(fields, f)
        doc_path = os.path.join(work, "document.json")
        with open(doc_path, "w") as f:
            json.dump(document, f)
        json_bytes = sum(len(json.dumps(v)) for v in document["bench"].values())

        def changed(r):
            # The document with one field of every configuration changed, for run r.
            path = os.path.join(work, f"doc_{r}.json")
            with open(path, "w") as f:
                json.dump({"bench": {k: {**v, "retries": 100 + r} for k, v in document["bench"].items()}}, f)
            return path

        zk_spec = f"zk://{zk_address}"
        rows = []

        def row(what, ours, theirs, goal):
            (ot, om), (tt, tm) = ours, theirs
            rows.append(f"| {what} | {n} | {ot * 1000:.0f} ms, peak {om:.0f} MB | {tt * 1000:.0f} ms, peak {tm:.0f} MB "
                        f"| {tt / ot:.1f}× faster (goal ≥ {goal}×) | {om / tm:.2f}× the memory (goal ≤ 1×) |")
            print(rows[-1], flush=True)

        print(f"{n} configurations, {json_bytes / 1e6:.2f} MB of JSON; medians of {runs} runs", flush=True)
        print("| work | N | confo CLI | Python confo 0.1.6.2 | speed | memory |")
        print("| --- | --- | --- | --- | --- | --- |")
        row("file: load the namespace (export vs load_backend + get_all)",
            measure(runs, lambda r: [confo, "-b", f"file:{root}", "export", "bench"]),
            measure(runs, lambda r: [compat, "-c", PY_LOAD_FILES, root, str(n)]), 5)
        run([confo, "-b", zk_spec, "import", doc_path])
        row("ZooKeeper: reload (export vs use_namespace + get_all)",
            measure(runs, lambda r: [confo, "-b", zk_spec, "export", "bench"]),
            measure(runs, lambda r: [compat, "-c", PY_ZK, "reload", zk_address, str(n)]), 30)
        # ZooKeeper persist: every configuration changed and written. Ours imports a document
        # that changes one field of each; Python confo sets it on each and persists the
        # namespace.
        paths = {r: changed(r) for r in range(runs)}
        ours = measure(runs, lambda r: [confo, "-b", zk_spec, "import", paths[r]])
        theirs = measure(1, lambda r: [compat, "-c", PY_ZK, "persist", zk_address, str(r)])
        row("ZooKeeper: persist all (import vs set + persist(namespace))", ours, theirs, 60)
        # Copy files → ZooKeeper: read one store, write the other (Python confo: the two rows
        # above in one process would be its equivalent; its peak is at most theirs).
        copy = measure(runs, lambda r: [confo, "copy", "--from", f"file:{root}", "--to", zk_spec, "bench"],
                       setup=lambda r: run([confo, "-b", zk_spec, "ns", "rm", "--force", "bench"]))
        print(f"\ncopy files → ZooKeeper (CLI): {copy[0] * 1000:.0f} ms, peak {copy[1]:.0f} MB")
    finally:
        zk.stdin.close()
        zk.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
