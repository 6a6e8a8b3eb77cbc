"""Backend types (confo's ``BE`` constants) and the standalone backend classes."""

FILE_BACKEND = 1
ZOOKEEPER_BACKEND = 2
REDIS_BACKEND = 3
ETCD_BACKEND = 4

from .AbstractBackend import AbstractBackend  # noqa: E402
from .FileBackend import FileBackend  # noqa: E402
from .ZookeeperBackend import ZookeeperBackend  # noqa: E402
from .RedisBackend import RedisBackend  # noqa: E402
from .EtcdBackend import EtcdBackend  # noqa: E402


def backend_selector(backend_type):
    """The standalone class for a backend type, as in confo."""
    return {
        FILE_BACKEND: FileBackend,
        ZOOKEEPER_BACKEND: ZookeeperBackend,
        REDIS_BACKEND: RedisBackend,
        ETCD_BACKEND: EtcdBackend,
    }.get(backend_type)
