"""Every way a call can fail raises a confo exception (where confo printed and went on)."""

import json

import pytest

from confo.Confo import Confo
import confo.Backends as BE
from confo.Exceptions import (
    BackendNotFoundException,
    BackendsActivationException,
    ConfigurationNotFoundException,
    ConflictException,
    ConfoError,
    CorruptDataException,
    CredentialsException,
    FieldNotFoundException,
    FileNotFoundException,
    InvalidNameException,
    InvalidValueException,
    NamespaceExistsException,
    NamespaceNotEmptyException,
    NamespaceNotFoundException,
    NamespaceNotLoadedException,
    UnauthorizedException,
    UnavailableException,
    ZookeeperHostNotFoundException,
    ZookeeperPortNotFoundException,
)
from confo.Backends import FileBackend, RedisBackend, ZookeeperBackend


def fresh_files(configurations):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    return backend


def test_backend_selection(unique):
    config = Confo()
    with pytest.raises(BackendNotFoundException):
        config.activate_backend("no_such_backend_" + unique)


def test_no_active_backend():
    backend = FileBackend()  # credentials never loaded
    with pytest.raises(BackendsActivationException):
        backend.get_all()


def test_namespaces(configurations):
    backend = fresh_files(configurations)
    with pytest.raises(NamespaceNotLoadedException):
        backend.get_all()
    with pytest.raises(NamespaceNotFoundException) as missing:
        backend.use_namespace("nope")
    assert isinstance(missing.value, NamespaceNotLoadedException), "subclasses confo's class"
    backend.create_namespace("sales")
    with pytest.raises(NamespaceExistsException):
        backend.create_namespace("sales")
    backend.use_namespace("sales")
    backend.set("db", "port", 1)
    backend.persist()
    with pytest.raises(NamespaceNotEmptyException):
        backend.delete_namespace("sales")
    backend.delete_namespace("sales", force=True)


def test_missing_things_are_none_or_errors(configurations):
    backend = fresh_files(configurations)
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    assert backend.get("nope") is None and backend.get("nope", "field") is None
    with pytest.raises(ConfigurationNotFoundException):
        backend.delete("nope")
    backend.set("c", "a", 1)
    with pytest.raises(FieldNotFoundException):
        backend.delete("c", "b")


def test_bad_names_and_values(configurations):
    backend = fresh_files(configurations)
    with pytest.raises(InvalidNameException):
        backend.create_namespace("../etc")
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    with pytest.raises(InvalidNameException):
        backend.set("a/b", "f", 1)
    with pytest.raises(InvalidValueException):
        backend.set("c", ["not", "a", "dict"], None)
    with pytest.raises(TypeError):
        backend.set("c", "f", object())  # not JSON


def test_credentials():
    with pytest.raises(ZookeeperHostNotFoundException):
        ZookeeperBackend().load_credentials({"zookeeper_port": "2181"})
    with pytest.raises(ZookeeperPortNotFoundException):
        ZookeeperBackend().load_credentials({"zookeeper_host": "127.0.0.1", "zookeeper_port": "two"})
    with pytest.raises(FileNotFoundException):
        FileBackend().load_credentials({})
    with pytest.raises(FileNotFoundException):
        FileBackend().load_credentials({"config_path": "/no/such/folder"})
    # A bad value is still refused, naming the key and never the value.
    with pytest.raises(CredentialsException) as bad:
        RedisBackend().load_credentials({"redis_host": "h", "redis_port": "hunter2"})
    assert "redis_port" in str(bad.value) and "hunter2" not in str(bad.value)


def test_unreachable_and_unauthorized(redis_server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(UnavailableException):
        RedisBackend().load_credentials({"redis_host": "127.0.0.1", "redis_port": free})
    host, port = redis_server.host_port
    assert isinstance(UnauthorizedException("x"), PermissionError)
    assert issubclass(UnavailableException, ConnectionError)


def test_corrupt_files(configurations):
    (configurations / "ns").mkdir()
    (configurations / "ns" / "bad.json").write_text("{oops")
    (configurations / "ns" / "good.json").write_text('{"v": 1}')
    backend = fresh_files(configurations)
    backend.use_namespace("ns")  # a corrupt entry blocks only itself
    assert backend.get("good") == {"v": 1}
    assert backend.get_all() == {"good": {"v": 1}}
    with pytest.raises(CorruptDataException) as corrupt:
        backend.get("bad")
    assert "bad.json:1:2" in str(corrupt.value)


def test_conflicts(configurations):
    one, two = fresh_files(configurations), fresh_files(configurations)
    one.create_namespace("ns")
    for backend in (one, two):
        backend.use_namespace("ns")
    one.set("c", "v", 1)
    one.persist()
    two.reload()
    one.set("c", "v", 2)
    two.set("c", "v", 3)
    one.persist()
    with pytest.raises(ConflictException):
        two.persist()
    assert json.loads((configurations / "ns" / "c.json").read_text()) == {"v": 2}
    assert two.staged() == ["ns/c"], "the edit is kept"
    two.reload()
    assert two.stored("c") == {"v": 2} and two.stale_edits() == ["ns/c"]
    two.persist(force=True)
    assert json.loads((configurations / "ns" / "c.json").read_text()) == {"v": 3}
    assert all(issubclass(e, ConfoError) for e in (ConflictException, NamespaceExistsException))
