"""What existing confo 0.1.6.2 code does, and must keep working: forks, lenient credentials,
reloading a backend, built-in exception classes, typos in persist, messages, counting."""

import multiprocessing
import os
import time
import traceback

import pytest

import confo.Backends as BE
from confo.Backends import EtcdBackend, FileBackend, RedisBackend, ZookeeperBackend
from confo.Confo import Confo
from confo.Exceptions import UnavailableException


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
