"""``Confo``: the process-wide configuration manager, as in the Python confo package."""


from ._session import Session, call, kind_of, load
from .Exceptions import BackendNotFoundException


class Confo(Session):
    """The configuration manager. ``Confo()`` always returns the same object, as in confo.

    >>> from confo.Confo import Confo
    >>> import confo.Backends as BE
    >>> config = Confo()
    >>> config.load_backend(credentials={"config_path": "Configurations"}, name="files",
    ...                     backend_type=BE.FILE_BACKEND)            # doctest: +SKIP
    """

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            instance = super().__new__(cls)
            Session.__init__(instance)
            cls._instance = instance
        return cls._instance

    def __init__(self):  # the singleton is set up once, in __new__
        pass

    def load_backend(self, credentials, name, backend_type):
        """Loads a backend from a credentials dictionary: ``{"config_path": ...}`` (files),
        ``{"zookeeper_host", "zookeeper_port", ...}``, ``{"redis_host", "redis_port", ...}``,
        ``{"etcd_host", "etcd_port", ...}``. A backend already loaded under that name is
        replaced (its staged edits dropped), and keys a backend does not know are ignored, as
        in confo."""
        load(self._native, name, kind_of(backend_type), credentials)

    def load_backend_spec(self, spec, name):
        """Loads a backend from a spec string such as ``redis://127.0.0.1:6379``."""
        call(self._native.load_backend_spec, name, spec)

    def load_backend_from(self, name, backend_type, source, namespace, config):
        """Loads a backend whose credentials are configuration ``namespace/config`` of the
        loaded backend ``source`` (the seed's note: Redis credentials kept in files)."""
        call(self._native.load_backend_from, name, kind_of(backend_type), source, namespace, config)

    def get_backends(self):
        """{"all_backends": [...], "active_backend": name or None} as in confo."""
        all_backends, active = self._native.backends()
        return {"all_backends": all_backends, "active_backend": active}

    def activate_backend(self, backend_name):
        """Makes a loaded backend the active one. BackendNotFoundException if unknown."""
        if backend_name not in self._native.backends()[0]:
            raise BackendNotFoundException(backend_name + " doesn't exist")
        call(self._native.activate_backend, backend_name)
