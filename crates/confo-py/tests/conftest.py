"""Fixtures: private servers from the Rust test harness (confo-servers), temp folders."""

import os
import subprocess
import uuid

import pytest

import confo

# When the test command says where it installed the wheel, the suite must be testing that
# installation, not a development copy that happens to be importable.
_SITE = os.environ.get("CONFO_PY_SITE")
if _SITE and not os.path.abspath(confo.__file__).startswith(os.path.abspath(_SITE) + os.sep):
    raise RuntimeError("testing %s, not the installed wheel in %s" % (confo.__file__, _SITE))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SERVERS = os.path.join(ROOT, "target", "debug", "confo-servers")


class Server:
    """A server started by the harness; stopped when its stdin closes."""

    def __init__(self, kind):
        if not os.path.exists(SERVERS):
            pytest.fail("%s is missing: run `cargo build -p confo-testkit --bin confo-servers` (the test command does)" % SERVERS)
        self.process = subprocess.Popen([SERVERS, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.process.kill()
            pytest.fail("could not start %s: %r (see stderr above)" % (kind, line))
        self.address = line[len("READY "):]

    @property
    def host_port(self):
        hostport = self.address.split("://")[-1]
        host, port = hostport.rsplit(":", 1)
        return host, port

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def redis_server():
    server = Server("redis")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster():
    server = Server("redis-cluster")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def zk_server():
    server = Server("zookeeper")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def etcd_server():
    server = Server("etcd")
    yield server
    server.stop()


@pytest.fixture
def unique():
    """A fresh name (confo's Confo is a process-wide singleton: backends need new names)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def configurations(tmp_path):
    """An empty Configurations folder, as a confo user has one."""
    path = tmp_path / "Configurations"
    path.mkdir()
    return path


@pytest.fixture
def sales(configurations, unique):
    """A session on a file backend of its own, in namespace "sales" (created)."""
    from confo.Confo import Confo
    import confo.Backends as BE

    config = Confo()
    config.load_backend(credentials={"config_path": str(configurations)}, name=unique, backend_type=BE.FILE_BACKEND)
    config.activate_backend(unique)
    config.create_namespace("sales", exist_ok=True)
    config.use_namespace("sales")
    return config
