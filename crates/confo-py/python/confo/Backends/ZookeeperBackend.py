"""``ZookeeperBackend``: ZooKeeper (zookeeper_host, zookeeper_port, zookeeper_user, zookeeper_passwd)."""

from ._standalone import StandaloneBackend


class ZookeeperBackend(StandaloneBackend):
    """ZooKeeper (zookeeper_host, zookeeper_port, zookeeper_user, zookeeper_passwd), usable on its own: ``load_credentials(credentials)`` first."""

    KIND = "zookeeper"
