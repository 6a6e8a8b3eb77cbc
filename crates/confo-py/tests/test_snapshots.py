"""Last-known-good snapshots from Python: "snapshots": "on" in the credentials."""

import os

import pytest

from confo.Confo import Confo
import confo.Backends as BE
from confo.Exceptions import UnavailableException

from conftest import Server


def test_a_new_session_reads_the_snapshot_while_redis_is_down(tmp_path, monkeypatch, unique):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = Server("redis")
    host, port = server.host_port
    credentials = {"redis_host": host, "redis_port": int(port), "snapshots": "on"}
    first = Confo()
    first.load_backend(credentials=credentials, name=unique, backend_type=BE.REDIS_BACKEND)
    first.activate_backend(unique)
    first.create_namespace("sales", exist_ok=True)
    first.use_namespace("sales")
    first.set("db", "port", 5432)
    first.persist()
    first.reload()
    assert first.from_snapshot is False
    server.stop()

    second = Confo()
    second.load_backend(credentials=credentials, name=unique + "b", backend_type=BE.REDIS_BACKEND)
    second.activate_backend(unique + "b")
    second.use_namespace("sales")
    assert second.from_snapshot is True
    info = second.snapshot_info()
    assert info["age"] < 60 and info["taken"].endswith("Z") and info["path"].endswith("sales.json")
    assert second.get("db", "port") == 5432
    # A forked child (gunicorn --preload, multiprocessing) reads the snapshot too.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            second.reload()
            code = 0 if second.from_snapshot and second.get("db", "port") == 5432 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    second.set("db", "port", 1)
    with pytest.raises(UnavailableException):
        second.persist()
