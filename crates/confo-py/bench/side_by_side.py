"""Per-call speed and memory of this package against confo 0.1.6.2, on the same data.

    python bench/side_by_side.py OURS_PYTHON CONFO_PYTHON [N] [OURS_SITE]

Each interpreter must import its own ``confo`` (ours: a release build, e.g. the wheel
installed with ``pip install --target OURS_SITE``, put first on its path; confo's:
``pip install confo==0.1.6.2``). A debug build (``maturin develop`` without ``--release``)
is several times slower and says nothing. Every figure is measured in a fresh process per
package (so peak RSS is that workload's alone) on a file backend in a temporary folder,
with the same configurations (11 fields, about 280 bytes each). Prints a markdown table.
"""

import json
import os
import subprocess
import sys
import tempfile

WORKER = r'''
import json, os, resource, sys, time, timeit
from confo.Confo import Confo
import confo.Backends as BE

root, namespace, n, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = Confo()
config.load_backend(credentials={"config_path": root}, name="files", backend_type=BE.FILE_BACKEND)
config.activate_backend("files")

def best(fn, number, repeat=5):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number

result = {}
if what == "calls":
    config.use_namespace(namespace)
    result["get(cfg)"] = best(lambda: config.get("c00001"), 20000)
    result["get(cfg, field)"] = best(lambda: config.get("c00001", "port"), 20000)
    result["set"] = best(lambda: config.set("c00001", "port", 1), 20000)
    result["get_all() small"] = best(config.get_all, 20000)
elif what == "shapes":
    # Data shapes as users have them: a list of 1,000 objects, and nested objects.
    config.use_namespace(namespace)
    result["get(cfg), a list of 1,000 objects"] = best(lambda: config.get("list1000"), 2000)
    result["get(cfg), nested objects"] = best(lambda: config.get("nested"), 20000)
elif what == "big":
    started = time.perf_counter()
    config.use_namespace(namespace)
    result["use_namespace"] = time.perf_counter() - started
    result["get_all()"] = best(config.get_all, 3, repeat=3)
    everything = config.get_all()
    result["peak RSS"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(result))
'''


def configuration(i):
    return {
        "host": "db%d.internal.example.com" % i, "port": 5432, "user": "service_account",
        "database": "inventory_%d" % i, "pool_min": 2, "pool_max": 20, "timeout_ms": 3000,
        "ssl": True, "replicas": ["replica-1.db.example.com", "replica-2.db.example.com"],
        "region": "eu-west-1", "owner": "team-%d@example.com" % (i % 97),
    }


def fill(root, namespace, n):
    os.makedirs(os.path.join(root, namespace))
    for i in range(n):
        with open(os.path.join(root, namespace, "c%05d.json" % i), "w") as f:
            json.dump(configuration(i), f)


def fill_shapes(root, namespace):
    os.makedirs(os.path.join(root, namespace))
    items = [{"id": i, "name": "item-%d" % i, "tags": ["a", "b"], "limits": {"cpu": 0.5, "mem": 512}} for i in range(1000)]
    nested = {"service": {"db": {"primary": configuration(1), "replicas": [configuration(2), configuration(3)]}},
              "features": {"flags": {"f%d" % i: {"on": i % 2 == 0, "rollout": i} for i in range(20)}}}
    for name, value in (("list1000", {"items": items}), ("nested", nested)):
        with open(os.path.join(root, namespace, name + ".json"), "w") as f:
            json.dump(value, f)


def run(python, root, namespace, n, what, site=None):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if site:
        env["PYTHONPATH"] = site
    out = subprocess.run(
        [python, "-c", WORKER, root, namespace, str(n), what], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(name, value):
    if name.startswith("peak RSS"):
        return "%.0f MB" % (value / 1e6)
    if value >= 1e-3:
        return "%.1f ms" % (value * 1e3)
    return "%.2f µs" % (value * 1e6)


def main():
    ours, theirs = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    site = sys.argv[4] if len(sys.argv) > 4 else None
    with tempfile.TemporaryDirectory() as root:
        fill(root, "small", 10)
        fill(root, "big", n)
        fill_shapes(root, "shapes")
        rows = []
        for what, namespace in (("calls", "small"), ("shapes", "shapes"), ("big", "big")):
            a, b = run(ours, root, namespace, n, what, site), run(theirs, root, namespace, n, what)
            for name in a:
                label = name if what == "calls" else "%s (%d configurations)" % (name, n)
                rows.append((label, a[name], b[name]))
    print("| operation | this package | confo 0.1.6.2 | ratio |")
    print("| --- | --- | --- | --- |")
    for name, a, b in rows:
        print("| %s | %s | %s | %.2f× |" % (name, show(name, a), show(name, b), a / b))


if __name__ == "__main__":
    main()
