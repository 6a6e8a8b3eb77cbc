"""``EtcdBackend``: etcd (etcd_host, etcd_port, etcd_user, etcd_password)."""

from ._standalone import StandaloneBackend


class EtcdBackend(StandaloneBackend):
    """etcd (etcd_host, etcd_port, etcd_user, etcd_password), usable on its own: ``load_credentials(credentials)`` first."""

    KIND = "etcd"
