"""``Confo``: the process-wide configuration manager, as in the Python confo package.

The module re-exports what confo's did (``from confo.Confo import *`` gave the backend
constants and classes, ``backend_selector``, the exception classes and ``validate_backend``).
"""

import functools
import types

from ._session import Session, call, kind_of, load
from .Backends import *  # noqa: F401,F403 (confo's module exported these)
from .Backends import FILE_BACKEND, ZOOKEEPER_BACKEND, FileBackend, ZookeeperBackend, backend_selector  # noqa: F401
from .Exceptions import *  # noqa: F401,F403
from .Exceptions import BackendNotFoundException, BackendsActivationException


def validate_backend(func):
    """confo's decorator: the method needs an active backend."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        if self.active_backend_name is None or self.active_backend_name not in self.get_backends()["all_backends"]:
            raise BackendsActivationException("Please activate a backend before this operation")
        return func(self, *args, **kwargs)

    return wrapper


class _BackendView:
    """A loaded backend of a ``Confo``, as ``Confo().backends[name]`` shows it."""

    def __init__(self, manager, name):
        self._manager = manager
        self.name = name

    def __repr__(self):
        return "<confo backend %r>" % self.name


class _Manager(Session):
    """A configuration manager: ``Confo`` without the one-per-process rule
    (``Confo.__wrapped__``).

    >>> from confo.Confo import Confo
    >>> import confo.Backends as BE
    >>> config = Confo()
    >>> config.load_backend(credentials={"config_path": "Configurations"}, name="files",
    ...                     backend_type=BE.FILE_BACKEND)            # doctest: +SKIP
    """

    @property
    def backends(self):
        """The loaded backends by name (read-only), as confo's ``backends`` dict."""
        return types.MappingProxyType({name: _BackendView(self, name) for name in self._native.backends()[0]})

    @property
    def active_backend_name(self):
        """The active backend's name, or None."""
        return self._native.backends()[1]

    @property
    def active_backend(self):
        """The active backend (a view), or None."""
        name = self.active_backend_name
        return None if name is None else _BackendView(self, name)

    def load_backend(self, credentials, name, backend_type):
        """Loads a backend from a credentials dictionary: ``{"config_path": ...}`` (files),
        ``{"zookeeper_host", "zookeeper_port", ...}``, ``{"redis_host", "redis_port", ...}``,
        ``{"etcd_host", "etcd_port", ...}``. ``backend_type`` may also be a class of one's own
        implementing confo's ``AbstractBackend`` (it is instantiated and given the
        credentials, and the core calls its methods). A backend already loaded under that name is
        replaced (its staged edits dropped), and keys a backend does not know are ignored, as
        in confo."""
        if isinstance(backend_type, type):
            # A backend class of one's own (confo's AbstractBackend interface): the core
            # drives an instance of it.
            backend = backend_type()
            backend.load_credentials(credentials)
            call(self._native.load_backend_object, name, backend, "python " + backend_type.__name__)
            return
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


class Confo(_Manager):
    """The configuration manager. ``Confo()`` always returns the same object, as in confo;
    ``Confo.__wrapped__()`` makes an independent one (the hook confo's singleton decorator
    gave tests)."""

    _instance = None
    __wrapped__ = _Manager

    def __new__(cls):
        if cls._instance is None:
            instance = super().__new__(cls)
            Session.__init__(instance)
            cls._instance = instance
        return cls._instance

    def __init__(self):  # the singleton is set up once, in __new__
        pass
