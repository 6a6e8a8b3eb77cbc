"""confo's backend classes used on their own, and what confo never had: deletes, watch,
typed access, batches."""

import dataclasses
import threading
import time

from confo.Backends import EtcdBackend, FileBackend, RedisBackend, ZookeeperBackend


def exercise(backend, namespace):
    backend.create_namespace(namespace)
    assert namespace in backend.get_namespaces()["all_namespaces"]
    backend.use_namespace(namespace)
    backend.set("database", "host", "h")
    backend.set("database", "port", 5432)
    backend.persist(namespace=namespace)
    backend.reload()
    assert backend.get_all() == {"database": {"host": "h", "port": 5432}}
    assert backend.get_count() == 1
    backend.delete("database", "port")
    backend.persist(namespace=namespace, config="database")
    backend.reload()
    assert backend.get("database") == {"host": "h"}
    backend.delete("database")
    backend.persist()
    assert backend.get_count() == 0
    backend.delete_namespace(namespace)


def test_file_backend_class(configurations, unique):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    exercise(backend, unique)


def test_redis_backend_class(redis_server, unique):
    host, port = redis_server.host_port
    backend = RedisBackend()
    backend.load_credentials({"redis_host": host, "redis_port": int(port)})
    exercise(backend, unique)


def test_zookeeper_backend_class(zk_server, unique):
    host, port = zk_server.host_port
    backend = ZookeeperBackend()
    backend.load_credentials({"zookeeper_host": host, "zookeeper_port": int(port)})
    exercise(backend, unique)


def test_etcd_backend_class(etcd_server, unique):
    host, port = etcd_server.host_port
    backend = EtcdBackend()
    backend.load_credentials({"etcd_host": host, "etcd_port": port})
    exercise(backend, unique)


@dataclasses.dataclass
class Database:
    host: str
    port: int


def test_typed_access_and_batches(configurations):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    with backend.batch():
        backend.set("db", {"host": "h", "port": 1, "extra": True}, None)
    assert (configurations / "ns" / "db.json").exists(), "persisted when the block ends"
    assert backend.get_as("db", Database) == Database(host="h", port=1)
    try:
        with backend.batch():
            backend.set("db", "port", 2)
            raise RuntimeError("abandon")
    except RuntimeError:
        pass
    assert backend.get("db", "port") == 1 and backend.staged() == [], "discarded when the block raises"


def test_watch_iterator_and_callback(redis_server, unique):
    host, port = redis_server.host_port
    watcher_side, writer = RedisBackend(), RedisBackend()
    for backend in (watcher_side, writer):
        backend.load_credentials({"redis_host": host, "redis_port": port})
    writer.create_namespace(unique)
    watcher_side.use_namespace(unique)
    writer.use_namespace(unique)
    seen = []
    handle = watcher_side.watch_callback(seen.append)
    events = watcher_side.watch(timeout=10)
    time.sleep(0.3)
    writer.set("c", "v", 1)
    writer.persist()
    event = next(events)
    assert event == {"event": "created", "namespace": unique, "configuration": "c", "value": {"v": 1}}
    deadline = time.time() + 10
    while not seen and time.time() < deadline:
        time.sleep(0.01)
    handle.stop()
    assert seen and seen[0]["configuration"] == "c"


def test_io_releases_the_gil(redis_server, unique):
    """Another thread runs Python in the middle of one long call into the store. If the call
    held the GIL, that thread could run only at its edges (a switch interval, 5 ms, each side)."""
    host, port = redis_server.host_port
    backend = RedisBackend()
    backend.load_credentials({"redis_host": host, "redis_port": port})
    backend.create_namespace(unique)
    backend.use_namespace(unique)
    for i in range(10000):
        backend.set("c%d" % i, "v", "x" * 500)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    thread = threading.Thread(target=ticker)
    thread.start()
    time.sleep(0.01)
    # One call: between calls the ticker may run anyway, so only one long call tells.
    started = time.perf_counter()
    backend.persist()
    ended = time.perf_counter()
    stop.set()
    thread.join()
    assert backend.get_count() == 10000
    window = ended - started
    assert window > 0.04, "the calls must be long enough to tell (%.3f s)" % window
    middle = [t for t in ticks if started + window / 4 < t < ended - window / 4]
    assert len(middle) > 100, "the other thread ran during the calls (%d ticks in the middle half)" % len(middle)


def test_numbers_stay_exact_through_python(configurations, unique):
    """Big integers stay ints, 17-digit doubles stay floats, and numbers no float holds come back
    as Decimal; setting one field never rewrites another."""
    import decimal
    import json

    folder = configurations / unique
    folder.mkdir()
    original = (
        '{"id": 123456789012345678901234567890, "low": -9223372036854775809, "h": 0.30000000000000004, '
        '"planck": 1.602176634e-19, "zero": -0, "huge": 1e400, "long": 0.1000000000000000000000000001}'
    )
    (folder / "limits.json").write_text(original)
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.use_namespace(unique)
    limits = backend.get("limits")
    assert limits["id"] == 123456789012345678901234567890 and type(limits["id"]) is int
    assert limits["h"] == 0.30000000000000004 and type(limits["h"]) is float
    assert limits["huge"] == decimal.Decimal("1e400") and limits["long"] == decimal.Decimal("0.1000000000000000000000000001")
    # get_all converts from the session's compact cache on its own path: the same numbers.
    every = backend.get_all()["limits"]
    assert every == limits and [type(v) for v in every.values()] == [type(v) for v in limits.values()]
    assert str(every["zero"]) == "-0" and type(every["low"]) is int
    backend.set("limits", "other", 2**70)
    backend.set("copy", limits, None)  # a whole configuration written back from Python
    backend.persist()
    for name in ("limits", "copy"):
        text = (folder / (name + ".json")).read_text()
        for number in ("123456789012345678901234567890", "-9223372036854775809", "0.30000000000000004",
                       "1.602176634e-19", '"zero": -0,', "1e+400", "0.1000000000000000000000000001"):
            assert number in text, (name, number, text)
    assert json.loads((folder / "limits.json").read_text())["other"] == 2**70
