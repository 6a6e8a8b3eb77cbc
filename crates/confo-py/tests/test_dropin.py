"""What existing confo 0.1.6.2 code does, and must keep working: forks, lenient credentials,
reloading a backend, built-in exception classes, typos in persist, messages, counting."""

import json
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


def test_a_forked_childs_inherited_edits_conflict_once_the_parent_wrote_them(configurations, unique):
    """A difference kept on purpose (README): a child inherits the parent's unsaved edits; once
    the parent has written them, the child's persist of the same edits is a ConflictException
    (confo wrote them a second time), since the child cannot tell its parent's write from
    another writer's. The child recovers with discard() and reads the parent's write."""
    backend = _file_backend(configurations, unique)
    backend.create_namespace(unique)
    backend.use_namespace(unique)
    backend.set("database", "port", 1)
    backend.persist()
    backend.set("database", "port", 2)  # unsaved when the process forks
    written_r, written_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(written_w)
            assert os.read(written_r, 1) == b"w", "the parent wrote"
            try:
                backend.persist()
            except ConflictException:
                backend.discard()
                backend.reload()
                assert backend.get("database", "port") == 2
                code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(written_r)
    backend.persist()
    os.write(written_w, b"w")
    os.close(written_w)
    assert _wait(pid) == 0, "the child's persist of its inherited edit was not a conflict"
    backend.delete_namespace(unique, force=True)


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


def test_load_backend_again_takes_the_new_credentials_and_keeps_the_session(tmp_path, unique):
    """Loading the active backend's name again (a ``get_config()`` helper that loads on every
    call) keeps the selected namespace and the staged edits, as confo kept them, and reads and
    writes with the new credentials."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "only_in_b").mkdir()
    (second / "ns").mkdir()
    config = Confo()
    config.load_backend({"config_path": str(first)}, unique, BE.FILE_BACKEND)
    config.activate_backend(unique)
    config.create_namespace("ns")
    config.use_namespace("ns")
    config.set("c", "v", 1)
    config.load_backend({"config_path": str(second)}, unique, BE.FILE_BACKEND)
    assert config.get_backends()["active_backend"] == unique
    assert config.get_namespaces()["current_namespace"] == "ns"
    assert "only_in_b" in config.get_namespaces()["all_namespaces"]
    assert config.staged() == ["ns/c"] and config.get("c") == {"v": 1}
    config.persist()
    assert json.loads((second / "ns" / "c.json").read_text()) == {"v": 1}
    assert not (first / "ns" / "c.json").exists()


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


def test_get_hands_out_the_sessions_own_objects(sales, configurations):
    """As confo 0.1.6.2: ``get`` returns the session's own dict (converted once per stored
    version), so a change made in place is seen by later reads and written by ``persist``; a
    ``set`` goes into that same dict; the objects stay the session's through a persist, and
    ``reload`` or ``use_namespace`` read afresh (new objects, as confo's did)."""
    sales.set("db", {"port": 5432, "hosts": ["a", "b"], "tls": {"on": True}}, None)
    first = sales.get("db")
    assert sales.get("db") is first and sales.get("db", "hosts") is first["hosts"]
    assert sales.get_all()["db"] is first
    first["port"] = 1
    first["hosts"].append("c")
    first["tls"]["on"] = False
    changed = {"port": 1, "hosts": ["a", "b", "c"], "tls": {"on": False}}
    assert sales.get("db") == changed and sales.get("db", "port") == 1
    sales.persist()
    assert json.loads((configurations / "sales" / "db.json").read_text()) == changed
    assert sales.get("db") is first and sales.staged() == []
    for port in (6000, 6001, 6002):
        sales.set("db", "port", port)
        assert first["port"] == port and sales.get("db") is first
    items = [{"id": i} for i in range(3)]
    sales.set("db", "items", items)
    items.append({"id": 3})  # the object itself went in, as in confo
    sales.persist()
    on_disk = json.loads((configurations / "sales" / "db.json").read_text())
    assert on_disk["port"] == 6002 and len(on_disk["items"]) == 4
    # Nothing changed in place: persist writes nothing.
    before = (configurations / "sales" / "db.json").stat().st_mtime_ns
    sales.persist()
    assert sales.staged() == []
    assert (configurations / "sales" / "db.json").stat().st_mtime_ns == before
    (configurations / "sales" / "db.json").write_text('{"port": 7000}')
    sales.reload()
    assert sales.get("db") == {"port": 7000} and first["port"] == 6002
    sales.create_namespace("other", exist_ok=True)
    sales.use_namespace("other")
    assert sales.get("db") is None
    sales.set("db", "port", 1)
    assert sales.get("db") == {"port": 1}
    sales.use_namespace("sales")
    assert sales.get("db") == {"port": 7000}


def test_a_whole_dict_set_becomes_the_sessions_object(sales, configurations):
    mine = {"a": 1}
    sales.set("c", mine, None)
    assert sales.get("c") is mine
    mine["b"] = 2
    sales.persist()
    assert json.loads((configurations / "sales" / "c.json").read_text()) == {"a": 1, "b": 2}
    sales.delete("c", "a")
    assert mine == {"b": 2}
    sales.delete("c")
    assert sales.get("c") is None


def test_a_change_in_place_over_another_writers_change_is_a_conflict(sales, configurations):
    """A dict changed in place while another writer changed the stored configuration: the
    change is staged on the version it was made from, so persisting it is a conflict rather
    than a silent overwrite of the other writer's change."""
    sales.set("db", "port", 1)
    sales.persist()
    mine = sales.get("db")
    (configurations / "sales" / "db.json").write_text('{"port": 2, "by": "another writer"}')
    mine["port"] = 3
    sales.reload()  # stages the change in place first, then reads what the other wrote
    assert sales.staged() == ["sales/db"] and sales.stale_edits() == ["sales/db"]
    with pytest.raises(ConflictException):
        sales.persist()
    assert json.loads((configurations / "sales" / "db.json").read_text()) == {"port": 2, "by": "another writer"}
    sales.persist(force=True)
    assert json.loads((configurations / "sales" / "db.json").read_text()) == {"port": 3}


def test_discard_forgets_changes_made_in_place(sales, configurations):
    sales.set("db", "port", 1)
    sales.persist()
    mine = sales.get("db")
    mine["port"] = 2
    sales.discard()
    assert sales.staged() == [] and sales.get("db") == {"port": 1}
    sales.persist()
    assert json.loads((configurations / "sales" / "db.json").read_text()) == {"port": 1}


def test_a_value_json_cannot_hold_put_in_place_fails_at_persist(sales, configurations):
    import datetime

    sales.set("db", "port", 1)
    sales.persist()
    sales.get("db")["when"] = datetime.datetime(2026, 1, 1)
    with pytest.raises(TypeError):
        sales.persist()
    assert json.loads((configurations / "sales" / "db.json").read_text()) == {"port": 1}
    del sales.get("db")["when"]
    sales.persist()


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
    # The dict set is the session's object until the namespace is read again (as in confo).
    backend.persist()
    backend.reload()
    assert backend.get("w") == {"t": [1, 2], "3": "int key", "true": "bool key", "n": {"dec": 1.5, "long": long}}
    assert type(backend.get("w")["n"]["long"]) is decimal.Decimal
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


def test_secrets_in_a_dict_changed_in_place_stay_sealed(configurations, tmp_path, monkeypatch):
    """The re-seal rule: a dict shows its secrets opened, and a change made in place is staged
    with each opened secret left as it was written back sealed as it was (the same ciphertext),
    and a new plain value where a secret is sealed again: plaintext is never written."""
    monkeypatch.setenv("CONFO_KEYS", str(_keyring(tmp_path / "keys.toml")))
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    backend.set_secret("db", "password", "hunter2")
    backend.persist()
    path = configurations / "ns" / "db.json"
    sealed = json.loads(path.read_text())["password"]
    mine = backend.get("db")
    assert mine == {"password": "hunter2"}
    mine["host"] = "h"
    backend.persist()
    stored = json.loads(path.read_text())
    assert stored == {"password": sealed, "host": "h"}
    mine["password"] = "correct horse"
    backend.persist()
    raw = path.read_text()
    assert "correct horse" not in raw and json.loads(raw)["password"] != sealed
    backend.reload()
    assert backend.get("db", "password") == "correct horse"
    # Without the keyring, a plain value where a secret is sealed is refused, not written.
    monkeypatch.setenv("CONFO_KEYS", str(tmp_path / "none.toml"))
    other = FileBackend()
    other.load_credentials({"config_path": str(configurations)})
    other.use_namespace("ns")
    theirs = other.get("db")
    assert set(theirs["password"]) == {"$confo_secret"}
    theirs["password"] = "in the clear"
    with pytest.raises(InvalidValueException):
        other.persist()
    assert "in the clear" not in path.read_text()


def test_a_secret_set_over_in_plain_is_sealed_again_or_refused(configurations, tmp_path, monkeypatch):
    """Issue 33, item 3: `d = get("db"); d["host"] = "x"; set("db", d, None); persist()` and
    `set("db", "password", "new")` never store the password in the clear (neither the file nor
    its history); without the keyring they are refused. `unset_secret` does it on purpose."""
    monkeypatch.setenv("CONFO_KEYS", str(_keyring(tmp_path / "keys.toml")))
    backend = FileBackend()
    backend.load_credentials({"config_path": str(configurations)})
    backend.create_namespace("ns")
    backend.use_namespace("ns")
    backend.set("db", "host", "h")
    backend.set_secret("db", "password", "hunter2")
    backend.persist()
    path = configurations / "ns" / "db.json"
    history = configurations.parent / ".Configurations.confo" / "history" / "ns" / "db"

    def clear_anywhere(text):
        return text in path.read_text() or any(text in p.read_text() for p in history.iterdir())

    d = dict(backend.get("db"))
    d["host"] = "x"
    backend.set("db", d, None)
    backend.persist()
    assert not clear_anywhere("hunter2")
    backend.set("db", "password", "new")
    backend.persist()
    assert not clear_anywhere('"new"')
    backend.reload()
    assert backend.get("db", "password") == "new"
    # On purpose, in the clear.
    backend.unset_secret("db", "password")
    assert json.loads(path.read_text())["password"] == "new"
    assert backend.get("db", "password") == "new"
    # Without a keyring, a session cannot write over a sealed value.
    backend.set_secret("db", "password", "sealed")
    backend.persist()
    monkeypatch.setenv("CONFO_KEYS", str(tmp_path / "none.toml"))
    other = FileBackend()
    other.load_credentials({"config_path": str(configurations)})
    other.use_namespace("ns")
    other.set("db", "password", "plain")
    with pytest.raises(InvalidValueException):
        other.persist()
    assert "plain" not in path.read_text()


def test_fork_while_another_thread_is_inside_a_call(configurations, unique, tmp_path):
    """A thread is inside a persist to a Redis server stopped with SIGSTOP (so it holds the
    manager's persist lock, waiting for an answer) when the process forks: the child, where
    that thread does not exist, must not hang on what it held. Deterministic: the fork always
    lands inside the call."""
    import shutil
    import signal
    import socket
    import subprocess
    import threading

    program = shutil.which("redis-server")
    if program is None:
        pytest.fail("redis-server not found: apt-get install -y redis-server (the test command does)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        config = Confo.__wrapped__()
        config.load_backend({"redis_host": "127.0.0.1", "redis_port": port}, "redis", BE.REDIS_BACKEND)
        config.load_backend({"config_path": str(configurations)}, "files", BE.FILE_BACKEND)
        config.activate_backend("redis")
        config.create_namespace(unique)
        config.use_namespace(unique)
        config.set("db", "port", 1)
        os.kill(server.pid, signal.SIGSTOP)
        inside = threading.Thread(target=lambda: _ignore(config.persist), daemon=True)
        inside.start()
        time.sleep(0.5)  # inside the call, waiting for the stopped server
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                config.activate_backend("files")
                config.create_namespace(unique)
                config.use_namespace(unique)
                config.set("written", "in", "the child")
                config.persist()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        assert _wait(pid, 40) == 0, "the child could not work"
        assert (configurations / unique / "written.json").is_file()
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
        server.wait()


def _ignore(call):
    try:
        call()
    except Exception:  # the server is stopped, then killed: the call's outcome does not matter
        pass
