"""What existing confo 0.1.6.2 code does, and must keep working: forks, lenient credentials,
reloading a backend, built-in exception classes, typos in persist, messages, counting."""

import logging
import multiprocessing
import os
import time
import traceback

import pytest

import confo.Backends as BE
from confo.Backends import EtcdBackend, FileBackend, RedisBackend, ZookeeperBackend
from confo.Backends.AbstractBackend import AbstractBackend
from confo.Confo import Confo
from confo.Exceptions import (
    ConfigurationNotFoundException,
    ConflictException,
    InvalidValueException,
    NamespaceExistsException,
    NamespaceNotFoundException,
    SecretException,
    UnavailableException,
)


def _wait(pid, seconds=30):
    """The exit status of a child, or a failure if it is still running after ``seconds``
    (a hang must fail the test, not hang it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def _file_backend(configurations, _unique):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    return backend


def _redis_backend(server):
    host, port = server.host_port
    backend = RedisBackend()
    backend.load_credentials({"redis_host": host, "redis_port": int(port)})
    return backend


def _zk_backend(server):
    host, port = server.host_port
    backend = ZookeeperBackend()
    backend.load_credentials({"zookeeper_host": host, "zookeeper_port": int(port)})
    return backend


def _etcd_backend(server):
    host, port = server.host_port
    backend = EtcdBackend()
    backend.load_credentials({"etcd_host": host, "etcd_port": port})
    return backend


def _fork_and_write(backend, namespace):
    """Loads in the parent, forks, writes in the child; the parent sees the child's write."""
    backend.create_namespace(namespace)
    backend.use_namespace(namespace)
    backend.set("database", "port", 1)
    backend.persist()
    backend.set("staged", "kept", True)  # staged in the parent, inherited by the child
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit code
        code = 1
        try:
            backend.use_namespace(namespace)
            assert backend.get("database", "port") == 1
            backend.set("database", "port", 2)
            backend.persist()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    assert _wait(pid) == 0, "the child could not read and write after the fork"
    backend.reload()
    assert backend.get("database", "port") == 2
    # The parent still works, with its own staged edit.
    assert backend.get("staged", "kept") is True
    backend.discard()
    backend.delete_namespace(namespace, force=True)


def test_fork_files(configurations, unique):
    _fork_and_write(_file_backend(configurations, unique), unique)


def test_fork_redis(redis_server, unique):
    _fork_and_write(_redis_backend(redis_server), unique)


def test_redis_cluster_from_credentials_and_after_fork(redis_cluster, unique):
    """A Redis Cluster of three masters from the credentials dictionary
    (``redis_cluster_nodes``), through the drop-in API, and in a forked child."""
    nodes = redis_cluster.address.split("://", 1)[1]
    backend = RedisBackend()
    backend.load_credentials({"redis_cluster_nodes": nodes})
    _fork_and_write(backend, unique)
    config = Confo.__wrapped__()
    config.load_backend(credentials={"redis_cluster_nodes": nodes}, name=unique, backend_type=BE.REDIS_BACKEND)
    config.activate_backend(unique)
    config.create_namespace(unique + "x")
    config.use_namespace(unique + "x")
    for i in range(50):
        config.set("c%d" % i, "i", i)
    config.persist()
    config.reload()
    assert config.get_count() == 50 and config.get("c7", "i") == 7
    config.delete_namespace(unique + "x", force=True)


def test_fork_zookeeper_says_why_at_once(zk_server, configurations, unique):
    """The ZooKeeper client's I/O thread does not survive fork() (async-io's reactor): in the
    child, ZooKeeper fails at once saying so, and the other backends keep working."""
    zk = _zk_backend(zk_server)
    zk.create_namespace(unique)
    files = _file_backend(configurations, unique)
    files.create_namespace(unique)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            started = time.monotonic()
            try:
                zk.use_namespace(unique)
            except UnavailableException as error:
                assert "forked" in str(error), str(error)
                assert time.monotonic() - started < 2, "it must not wait for a timeout"
            else:
                raise AssertionError("ZooKeeper cannot work in a forked child")
            files.use_namespace(unique)
            files.set("c", "v", 1)
            files.persist()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    assert _wait(pid) == 0
    files.use_namespace(unique)
    assert files.get("c", "v") == 1
    # The parent's ZooKeeper connection is untouched.
    zk.use_namespace(unique)
    zk.delete_namespace(unique)


def test_fork_etcd(etcd_server, unique):
    _fork_and_write(_etcd_backend(etcd_server), unique)


def _child_persists(namespace):
    config = Confo()
    config.use_namespace(namespace)
    config.set("from_child", "n", os.getpid())
    config.persist()


def test_multiprocessing_fork_start_method(redis_server, unique):
    host, port = redis_server.host_port
    config = Confo()
    config.load_backend({"redis_host": host, "redis_port": int(port)}, unique, BE.REDIS_BACKEND)
    config.activate_backend(unique)
    config.create_namespace(unique)
    config.use_namespace(unique)
    process = multiprocessing.get_context("fork").Process(target=_child_persists, args=(unique,))
    process.start()
    process.join(30)
    if process.is_alive():
        process.kill()
        pytest.fail("the multiprocessing child hung")
    assert process.exitcode == 0
    config.reload()
    assert config.get("from_child", "n") == process.pid


# ----- item 2: credentials with extra keys are accepted, the extras ignored and logged -----


def test_extra_credentials_keys_are_ignored_and_logged(configurations, caplog):
    backend = FileBackend()
    with caplog.at_level(logging.DEBUG, logger="confo"):
        backend.load_credentials({"config_path": str(configurations), "env": "prod", "token": "hunter2"})
    backend.create_namespace("ns")
    assert "ns" in backend.get_namespaces()["all_namespaces"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "env" in logged and "token" in logged and "hunter2" not in logged


def test_credentials_kept_in_a_configuration(configurations, redis_server, unique):
    host, port = redis_server.host_port
    config = Confo()
    config.load_backend({"config_path": str(configurations)}, unique + "f", BE.FILE_BACKEND)
    config.activate_backend(unique + "f")
    config.create_namespace("infra", exist_ok=True)
    config.use_namespace("infra")
    config.set("redis", {"redis_host": host, "redis_port": port, "owner": "ops", "rotated": "2026-01"}, None)
    config.persist()
    config.load_backend(config.get("redis"), unique + "r", BE.REDIS_BACKEND)
    assert unique + "r" in config.get_backends()["all_backends"]


# ----- item 3: load_backend of a loaded name replaces it -----


def test_load_backend_again_replaces_it(tmp_path, unique):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "only_in_b").mkdir()
    config = Confo()
    config.load_backend({"config_path": str(first)}, unique, BE.FILE_BACKEND)
    config.activate_backend(unique)
    config.create_namespace("ns")
    config.use_namespace("ns")
    config.set("c", "v", 1)  # staged, dropped by the replacement (as in confo)
    config.load_backend({"config_path": str(second)}, unique, BE.FILE_BACKEND)
    assert config.get_backends()["active_backend"] == unique
    assert config.get_namespaces()["all_namespaces"] == ["only_in_b"]
    assert config.staged() == []


# ----- item 4: built-in exception classes, as confo raised them -----


def test_builtin_exception_classes(tmp_path):
    with pytest.raises(FileNotFoundError):
        FileBackend().load_credentials({"config_path": str(tmp_path / "missing")})
    with pytest.raises(KeyError):
        FileBackend().load_credentials({})
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError):
        FileBackend().load_credentials({"config_path": str(a_file)})
    with pytest.raises(TypeError):
        FileBackend().load_credentials(None)
    with pytest.raises(TypeError):
        Confo().load_backend({"config_path": str(tmp_path)}, "x", 99)
    with pytest.raises(ValueError):
        ZookeeperBackend().load_credentials({"zookeeper_host": "127.0.0.1", "zookeeper_port": "two"})
    backend = FileBackend()
    backend.load_credentials({"config_path": str(tmp_path)})
    with pytest.raises(KeyError):
        backend.get_all()  # no namespace selected


# ----- item 5: persist of a name that does not exist -----


def test_persist_of_a_typo_is_not_found(configurations):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    backend.set("c", "v", 1)
    backend.persist()
    with pytest.raises(NamespaceNotFoundException):
        backend.persist(namespace="nss")
    with pytest.raises(ConfigurationNotFoundException):
        backend.persist(namespace="ns", config="cc")
    backend.persist(namespace="ns", config="c")  # exists, nothing staged: fine


# ----- item 6: NaN and Infinity -----


def test_nan_is_refused_in_plain_words(configurations):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    for bad in (float("nan"), float("inf"), {"x": float("-inf")}):
        with pytest.raises(InvalidValueException) as error:
            backend.set("c", "f", bad)
        assert "NaN and Infinity are not JSON" in str(error.value) and "c.f" in str(error.value)
        assert "line 1 column" not in str(error.value)


# ----- item 7: get_count counts without building the map (timed in bench_get_count.py) -----


def test_get_count_follows_staged_edits(configurations):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    for i in range(200):
        backend.set("c%d" % i, "v", i)
    assert backend.get_count() == 200
    backend.persist()
    backend.delete("c0")
    backend.set("c1", "v", -1)
    backend.set("new", "v", 1)
    assert backend.get_count() == 200 == len(backend.get_all())


def test_get_hands_out_copies_that_follow_every_change(sales, configurations):
    """``get`` keeps each configuration converted and hands out copies (item 11's speed): a
    copy, nested lists and dicts included, can be changed freely, and every later change (a
    set, a set of the same field again, a persist, an edit on disk read by ``reload``, the same
    name in another namespace) is what the next ``get`` returns."""
    sales.set("db", {"port": 5432, "hosts": ["a", "b"], "tls": {"on": True}}, None)
    first = sales.get("db")
    first["port"] = 1
    first["hosts"].append("c")
    first["tls"]["on"] = False
    again = sales.get("db")
    assert again == {"port": 5432, "hosts": ["a", "b"], "tls": {"on": True}}
    assert again is not sales.get("db") and again["hosts"] is not sales.get("db")["hosts"]
    for port in (6000, 6001, 6002):
        sales.set("db", "port", port)
        assert sales.get("db")["port"] == port
    sales.persist()
    assert sales.get("db")["port"] == 6002
    (configurations / "sales" / "db.json").write_text('{"port": 7000}')
    sales.reload()
    assert sales.get("db") == {"port": 7000}
    sales.create_namespace("other", exist_ok=True)
    sales.use_namespace("other")
    assert sales.get("db") is None
    sales.set("db", "port", 1)
    assert sales.get("db") == {"port": 1}
    sales.use_namespace("sales")
    assert sales.get("db") == {"port": 7000}


# ----- item 9: ensure a namespace exists -----


def test_create_namespace_exist_ok(configurations):
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.create_namespace("ns", exist_ok=True)
    with pytest.raises(NamespaceExistsException):
        backend.create_namespace("ns")


# ----- item 8: the API surface confo code reads -----


def test_confo_module_exports_and_attributes(configurations, unique):
    import confo.Confo as module
    from confo.Backends.AbstractBackend import AbstractBackend

    for name in ("FILE_BACKEND", "ZOOKEEPER_BACKEND", "FileBackend", "ZookeeperBackend", "backend_selector",
                 "validate_backend", "BackendNotFoundException", "NamespaceNotLoadedException",
                 "FileNotFoundException", "BackendsActivationException"):
        assert hasattr(module, name), name
    assert module.backend_selector(module.FILE_BACKEND) is module.FileBackend
    assert isinstance(FileBackend(), AbstractBackend)

    fresh = Confo.__wrapped__()
    assert fresh is not Confo() and fresh.get_backends()["all_backends"] == []
    assert fresh.active_backend is None and fresh.active_backend_name is None
    fresh.load_backend({"config_path": str(configurations)}, unique, BE.FILE_BACKEND)
    assert list(fresh.backends) == [unique] and unique not in Confo().backends
    fresh.activate_backend(unique)
    assert fresh.active_backend_name == unique and fresh.active_backend.name == unique
    with pytest.raises(TypeError):
        fresh.backends["x"] = None  # read-only


def test_standalone_attributes_and_persist_helpers(configurations):
    backend = FileBackend()
    assert backend.get_namespaces()["all_namespaces"] == []  # before load_credentials, as confo
    assert backend.namespaces == [] and backend.namespace_name == "*"
    credentials = {"config_path": str(configurations)}
    backend.load_credentials(credentials)
    assert backend.credentials == credentials and backend.config_path == str(configurations)
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    backend.set("c", "v", 1)
    assert backend.configurations == {"ns": {"c": {"v": 1}}}
    assert backend.namespaces == ["ns"] and backend.namespace_name == "ns"
    backend.persist_configuration("ns", "c")
    backend.set("d", "v", 2)
    backend.persist_namespace("ns")
    backend.set("e", "v", 3)
    backend.persist_everything()
    assert backend.staged() == []
    assert sorted(p.name for p in (configurations / "ns").iterdir()) == ["c.json", "d.json", "e.json"]


# ----- item 11: values are converted directly, with the same results as JSON gave -----


def test_values_convert_as_json_would(configurations, unique):
    import decimal

    folder = configurations / unique
    folder.mkdir()
    (folder / "read.json").write_text('{"a": 1.50, "b": 15e-1, "c": 1e2, "d": -0.0, "e": [1, {"f": null}], "g": true}')
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.use_namespace(unique)
    read = backend.get("read")
    assert read == {"a": 1.5, "b": 1.5, "c": 100.0, "d": 0.0, "e": [1, {"f": None}], "g": True}
    assert all(type(read[k]) is float for k in "abcd")
    long = decimal.Decimal("0.1000000000000000000000000001")
    # A Decimal a float holds exactly reads back as that float (as through JSON before); one it
    # does not hold stays a Decimal.
    backend.set("w", {"t": (1, 2), 3: "int key", True: "bool key", "n": {"dec": decimal.Decimal("1.50"), "long": long}}, None)
    assert backend.get("w") == {"t": [1, 2], "3": "int key", "true": "bool key", "n": {"dec": 1.5, "long": long}}
    assert type(backend.get("w")["n"]["long"]) is decimal.Decimal
    got = backend.get("w")
    got["t"].append(3)  # a copy: the cache is untouched
    assert backend.get("w")["t"] == [1, 2]
    for bad in (decimal.Decimal("NaN"), float("-inf")):
        with pytest.raises(InvalidValueException):
            backend.set("w", "bad", bad)
    with pytest.raises(TypeError):
        backend.set("w", "bad", {1.5j: 1})


class DictBackend(AbstractBackend):
    """A backend of one's own, written against confo's interface, keeping data in a dict."""

    STORE = {}

    def load_credentials(self, credentials):
        self.prefix = credentials["prefix"]
        self.namespace_name = None

    def get_namespaces(self):
        names = [k[len(self.prefix):] for k in self.STORE if k.startswith(self.prefix)]
        return {"all_namespaces": names, "current_namespace": self.namespace_name}

    def create_namespace(self, namespace):
        self.STORE.setdefault(self.prefix + namespace, {})

    def use_namespace(self, namespace):
        self.namespace_name = namespace

    def get_all(self):
        return self.STORE[self.prefix + self.namespace_name]

    def set(self, config, field, value):
        self.pending = (config, field)

    def persist(self, namespace, config):
        name, value = self.pending
        self.STORE[self.prefix + namespace][name] = value

    def delete(self, config):
        self.pending_delete = config

    def reload(self):
        pass


def test_a_backend_class_of_ones_own(unique):
    config = Confo.__wrapped__()
    config.load_backend({"prefix": unique + ":"}, "mine", DictBackend)
    config.activate_backend("mine")
    config.create_namespace("ns")
    config.use_namespace("ns")
    config.set("db", "port", 5432)
    config.persist()
    assert DictBackend.STORE[unique + ":ns"] == {"db": {"port": 5432}}
    config.reload()
    assert config.get("db", "port") == 5432 and config.get_count() == 1
    # Someone changes it behind the manager's back: persisting an older edit is a conflict.
    config.set("db", "port", 1)
    DictBackend.STORE[unique + ":ns"]["db"] = {"port": 9}
    with pytest.raises(ConflictException):
        config.persist()


# ----- secrets (issue "Secrets encrypted at rest") -----


def _keyring(path):
    import base64
    import secrets

    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    path.write_text('primary = "k1"\n\n[keys]\nk1 = "%s"\n' % key)
    path.chmod(0o600)
    return path


def test_secrets_are_sealed_at_rest_and_read_back_with_the_keyring(configurations, tmp_path, monkeypatch):
    monkeypatch.setenv("CONFO_KEYS", str(_keyring(tmp_path / "keys.toml")))
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    backend.set("db", "host", "h")
    backend.set_secret("db", "password", "hunter2")
    backend.set_secret("db", "pin", 1234)
    backend.persist()
    raw = (configurations / "ns" / "db.json").read_text()
    assert "hunter2" not in raw and "$confo_secret" in raw
    assert backend.get("db") == {"host": "h", "password": "hunter2", "pin": 1234}
    assert backend.get("db", "pin") == 1234 and backend.get_all()["db"]["password"] == "hunter2"
    # Without the keyring, a reader gets the sealed value, never plaintext.
    monkeypatch.setenv("CONFO_KEYS", str(tmp_path / "none.toml"))
    other = FileBackend()
    other.load_credentials({"config_path": str(configurations)})
    other.use_namespace("ns")
    assert set(other.get("db")["password"]) == {"$confo_secret"}
    with pytest.raises(SecretException):
        other.set_secret("db", "token", "x")
