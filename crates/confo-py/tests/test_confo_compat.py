"""Code written for confo 0.1.6.2, run unchanged against confo 0.1.6.2 itself and against this
package: the test command runs this file twice, once with each (``CONFO_UNDER_TEST`` names
which). Only confo's API is used here; where confo printed, nothing is asserted about output.

Each test is a break a confo user met with this package (the issue "The Python package as
confo's drop-in"): it passes on confo 0.1.6.2, and must on this package.
"""

import configparser
import datetime
import os

import pytest

import confo.Backends as BE
from confo.Backends.AbstractBackend import AbstractBackend
from confo.Confo import Confo

UNDER_TEST = os.environ.get("CONFO_UNDER_TEST", "this package")
ORIGINAL = UNDER_TEST == "confo-0.1.6.2"


def _files(tmp_path, name="Configurations"):
    root = tmp_path / name
    root.mkdir()
    return root


def _write(root, namespace, config, text):
    (root / namespace).mkdir(exist_ok=True)
    (root / namespace / (config + ".json")).write_text(text)


def test_loading_the_active_backend_again_keeps_the_namespace_and_the_edits(tmp_path, unique):
    """A helper that loads and activates on every call, as confo's users wrote it."""
    root = _files(tmp_path)
    _write(root, "sales", "database", '{"host": "db", "port": 5432}')

    def get_config():
        config = Confo()
        config.load_backend(credentials={"config_path": str(root)}, name=unique, backend_type=BE.FILE_BACKEND)
        config.activate_backend(unique)
        return config

    config = get_config()
    config.use_namespace("sales")
    config.set("database", "port", 6432)
    again = get_config()
    assert again.get_namespaces()["current_namespace"] == "sales"
    assert again.get("database", "port") == 6432, "the staged edit is kept"
    again.persist()
    assert '6432' in (root / "sales" / "database.json").read_text()


class MemoryBackend(AbstractBackend):
    """A backend of one's own as confo's users wrote them: the four abstract methods, and the
    rest (use_namespace, get, set, get_all, get_count) inherited from confo's AbstractBackend."""

    def __init__(self):
        self.configurations = {}
        self.namespace_name = "*"
        self.namespaces = []
        self.store = {}

    def load_credentials(self, credentials):
        self.store = credentials["store"]
        self.namespaces = sorted(self.store)

    def create_namespace(self, namespace):
        self.store.setdefault(namespace, {})
        self.namespaces = sorted(self.store)

    def persist(self, namespace=False, config=False):
        namespaces = [namespace] if namespace else list(self.configurations)
        for ns in namespaces:
            for name, value in self.configurations.get(ns, {}).items():
                if config and name != config:
                    continue
                self.store.setdefault(ns, {})[name] = dict(value)

    def reload(self):
        self.configurations[self.namespace_name] = {k: dict(v) for k, v in self.store.get(self.namespace_name, {}).items()}


def test_a_backend_object_of_ones_own_assigned_into_backends(unique):
    from confo.Confo import singleton  # noqa: F401 (confo's module exported it)

    store = {"ns": {"db": {"port": 5432}}}
    backend = MemoryBackend()
    backend.load_credentials({"store": store})
    config = Confo()
    config.backends[unique] = backend
    config.activate_backend(unique)
    assert config.active_backend is backend
    assert config.backends[unique] is backend
    assert isinstance(config.active_backend, AbstractBackend)
    config.use_namespace("ns")
    assert backend.namespace_name == "ns"
    assert config.get("db", "port") == 5432
    assert config.get_count() == 1 and list(config.get_all()) == ["db"]
    config.set("db", "port", 6432)
    config.set("cache", "ttl", 30)
    config.persist()
    assert store["ns"] == {"db": {"port": 6432}, "cache": {"ttl": 30}}


def test_credentials_with_values_json_cannot_hold_and_from_configparser(tmp_path, unique):
    root = _files(tmp_path)
    config = Confo()
    extra = {"config_path": str(root), "loaded_at": datetime.datetime.now(), "owner": object(), "ratio": float("nan")}
    config.load_backend(credentials=extra, name=unique, backend_type=BE.FILE_BACKEND)
    parser = configparser.ConfigParser()
    parser.read_string("[confo]\nconfig_path = %s\ncomment = from an ini file\n" % root)
    config.load_backend(credentials=parser["confo"], name=unique + "ini", backend_type=BE.FILE_BACKEND)
    config.activate_backend(unique + "ini")
    assert config.get_namespaces()["all_namespaces"] == []


_AS_A_USER = """
import sys
from confo.Confo import Confo
import confo.Backends as BE
config = Confo()
config.load_backend(credentials={"config_path": sys.argv[1]}, name="b", backend_type=BE.FILE_BACKEND)
config.activate_backend("b")
config.use_namespace("sales")
config.set("database", "port", 2)
try:
    config.persist()
except PermissionError as error:
    print("PermissionError", isinstance(error, OSError), error.errno)
    sys.exit(3)
print("saved")
"""


@pytest.fixture
def open_tmp():
    """A temp folder an unprivileged user can reach (pytest's own are private to root)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="confo-compat-")
    os.chmod(path, 0o755)
    import pathlib

    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody(tmp, root):
    """Runs the script above on ``root`` as an unprivileged user (root's writes are never
    refused; Debian's own Python, the user cannot reach root's): its exit code and output."""
    import subprocess
    import sys

    import confo

    home = tmp / "home"
    home.mkdir(exist_ok=True)
    site = os.path.dirname(os.path.dirname(os.path.abspath(confo.__file__)))
    python = sys.executable
    command = [python, "-c", _AS_A_USER, str(root)]
    if os.geteuid() == 0:
        os.chown(home, 65534, 65534)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/python3"] + command[1:]
    env = dict(os.environ, PYTHONPATH=site, HOME=str(home))
    env.pop("CONFO_KEYS", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    return done.returncode, done.stdout + done.stderr


def test_a_save_the_system_refuses_is_a_permission_error(open_tmp):
    root = _files(open_tmp)
    _write(root, "sales", "database", '{"port": 1}')
    # Readable by the user, writable only by root.
    for path in (root, root / "sales"):
        path.chmod(0o755)
    (root / "sales" / "database.json").chmod(0o644)
    code, said = _as_nobody(open_tmp, root)
    assert code == 3 and "PermissionError True 13" in said, said
    assert '"port": 1' in (root / "sales" / "database.json").read_text()


def test_saving_where_only_the_store_folder_is_writable(open_tmp):
    """A volume at /config: the user owns the store folder, not the folder above it."""
    volume = open_tmp / "volume"
    volume.mkdir()
    root = volume / "config"
    root.mkdir()
    _write(root, "sales", "database", '{"port": 1}')
    if os.geteuid() == 0:
        for path in (root, root / "sales", root / "sales" / "database.json"):
            os.chown(path, 65534, 65534)
    volume.chmod(0o555)
    try:
        code, said = _as_nobody(open_tmp, root)
    finally:
        volume.chmod(0o755)
    assert code == 0 and "saved" in said, said
    assert '2' in (root / "sales" / "database.json").read_text()
    assert sorted(os.listdir(volume)) == ["config"], "nothing was made beside the store"


def test_persist_of_a_configuration_without_a_namespace_writes_everything(tmp_path, unique):
    root = _files(tmp_path)
    _write(root, "sales", "database", '{"port": 1}')
    config = Confo()
    config.load_backend(credentials={"config_path": str(root)}, name=unique, backend_type=BE.FILE_BACKEND)
    config.activate_backend(unique)
    config.use_namespace("sales")
    config.set("database", "port", 2)
    config.persist(config="database")
    assert '"port": 2' in (root / "sales" / "database.json").read_text().replace('":2', '": 2')


def test_get_before_a_namespace_is_selected_is_none(tmp_path, unique):
    root = _files(tmp_path)
    _write(root, "sales", "database", '{"port": 1}')
    config = Confo()
    config.load_backend(credentials={"config_path": str(root)}, name=unique, backend_type=BE.FILE_BACKEND)
    config.activate_backend(unique)
    assert config.get("database") is None
    assert config.get("database", "port") is None


def test_a_zookeeper_node_of_white_space_reads_as_an_empty_configuration(zk_server, unique):
    from kazoo.client import KazooClient

    host, port = zk_server.host_port
    raw = KazooClient(hosts="%s:%s" % (host, port))
    raw.start()
    try:
        raw.ensure_path("/confo/%s" % unique)
        raw.create("/confo/%s/blank" % unique, b"  \n\t ")
        raw.create("/confo/%s/db" % unique, b'{"port": 1}')
        config = Confo()
        credentials = {"zookeeper_host": host, "zookeeper_port": port}
        config.load_backend(credentials=credentials, name=unique, backend_type=BE.ZOOKEEPER_BACKEND)
        config.activate_backend(unique)
        config.use_namespace(unique)
        assert config.get("blank") == {}
        assert config.get("db", "port") == 1
    finally:
        raw.delete("/confo/%s" % unique, recursive=True)
        raw.stop()


def test_get_hands_out_the_sessions_own_objects(tmp_path, unique):
    """``d = get("db"); d["x"] = 1; persist()`` writes it; a list handed out by ``get(cfg,
    field)`` is the configuration's own; ``get_all()`` holds the same objects."""
    root = _files(tmp_path)
    _write(root, "sales", "database", '{"host": "db", "replicas": [1, 2]}')
    config = Confo()
    config.load_backend(credentials={"config_path": str(root)}, name=unique, backend_type=BE.FILE_BACKEND)
    config.activate_backend(unique)
    config.use_namespace("sales")
    database = config.get("database")
    assert config.get("database") is database
    assert config.get_all()["database"] is database
    database["pool"] = 10
    config.get("database", "replicas").append(3)
    assert config.get("database", "pool") == 10
    config.set("database", "host", "db2")
    assert database["host"] == "db2", "set changes the object handed out"
    config.persist()
    import json

    assert json.loads((root / "sales" / "database.json").read_text()) == {
        "host": "db2",
        "replicas": [1, 2, 3],
        "pool": 10,
    }
