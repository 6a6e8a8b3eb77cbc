"""get_count() on a namespace of 10,000 configurations against len(get_all()) (not a test:
run it with the package installed; it prints microseconds per call)."""

import sys
import tempfile
import timeit

from confo.Backends import FileBackend


def main(n=10_000):
    with tempfile.TemporaryDirectory() as root:
        backend = FileBackend()
        backend.load_credentials({"config_path": root})
        backend.create_namespace("ns")
        backend.use_namespace("ns")
        for i in range(n):
            backend.set("c%05d" % i, "port", i)
        backend.persist()
        count = min(timeit.repeat(backend.get_count, number=1000, repeat=5)) / 1000
        get_all = min(timeit.repeat(lambda: len(backend.get_all()), number=5, repeat=3)) / 5
        print("%d configurations: get_count %.1f us, len(get_all()) %.1f us" % (n, count * 1e6, get_all * 1e6))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
