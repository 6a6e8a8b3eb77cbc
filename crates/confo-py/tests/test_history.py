"""History and rollback from Python: config.history(name), config.rollback(name, n)."""

import json
import os

import pytest

from confo.Confo import Confo
import confo.Backends as BE
from confo.Exceptions import ConflictException, HistoryOffException, RevisionNotFoundException


def test_history_and_rollback(sales, configurations, monkeypatch):
    config = sales
    for actor, port in (("alice", 5432), ("bob", 6432), ("carol", 7432)):
        monkeypatch.setenv("CONFO_ACTOR", actor)
        # The actor is read when the session is made: a new process per actor in real use.
        config.set("database", "port", port)
        config.persist()
    history = config.history("database")
    assert [r["number"] for r in history] == [3, 2, 1]
    assert [r["operation"] for r in history] == ["change", "change", "create"]
    assert [r["value"]["port"] for r in history] == [7432, 6432, 5432]
    assert history[0]["tool"] == "python"
    assert history[0]["time"].endswith("Z")

    assert config.rollback("database", 1) == 4
    assert config.get("database", "port") == 5432, "the session sees the restored value"
    newest = config.history("database", limit=1)
    assert len(newest) == 1
    assert (newest[0]["operation"], newest[0]["restores"]) == ("rollback", 1)
    assert json.loads((configurations / "sales" / "database.json").read_text()) == {"port": 5432}

    with pytest.raises(RevisionNotFoundException):
        config.rollback("database", 99)

    # Someone else changes the file: this session's rollback is stale, and writes nothing.
    (configurations / "sales" / "database.json").write_text(json.dumps({"port": 1}))
    with pytest.raises(ConflictException):
        config.rollback("database", 2)
    assert json.loads((configurations / "sales" / "database.json").read_text()) == {"port": 1}

    # History lives beside the root, never inside it (Python confo would read it).
    assert sorted(os.listdir(configurations)) == ["sales"]
    assert (configurations.parent / ".Configurations.confo" / "history" / "sales" / "database").is_dir()


def test_history_switched_off(configurations, unique):
    config = Confo()
    config.load_backend(
        credentials={"config_path": str(configurations), "history": "off"}, name=unique, backend_type=BE.FILE_BACKEND
    )
    config.activate_backend(unique)
    config.create_namespace("sales")
    config.use_namespace("sales")
    config.set("database", "port", 1)
    config.persist()
    with pytest.raises(HistoryOffException) as raised:
        config.history("database")
    assert "history=off" in str(raised.value)
    assert not (configurations.parent / ".Configurations.confo").exists()
