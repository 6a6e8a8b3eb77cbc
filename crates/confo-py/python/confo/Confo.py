"""``Confo``: the process-wide configuration manager, as in the Python confo package.

The module re-exports what confo's did (``from confo.Confo import *`` gave the backend
constants and classes, ``backend_selector``, the exception classes and ``validate_backend``).
"""

import collections.abc
import functools
import types

from ._session import Session, call, kind_of, load
from .Backends import *  # noqa: F401,F403 (confo's module exported these)
from .Backends import FILE_BACKEND, ZOOKEEPER_BACKEND, FileBackend, ZookeeperBackend, backend_selector  # noqa: F401
from .Exceptions import *  # noqa: F401,F403
from .Exceptions import BackendNotFoundException, BackendsActivationException, BackendTypeException


def validate_backend(func):
    """confo's decorator: the method needs an active backend."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        if self.active_backend_name is None or self.active_backend_name not in self.get_backends()["all_backends"]:
            raise BackendsActivationException("Please activate a backend before this operation")
        return func(self, *args, **kwargs)

    return wrapper


class _SingletonWrapper:
    """What ``singleton_decorator.singleton`` makes of a class: calling it gives one instance,
    made the first time; ``__wrapped__`` is the class."""

    def __init__(self, cls):
        self.__wrapped__ = cls
        self._instance = None
        functools.update_wrapper(self, cls, updated=())

    def __call__(self, *args, **kwargs):
        if self._instance is None:
            self._instance = self.__wrapped__(*args, **kwargs)
        return self._instance


def singleton(cls):
    """The decorator confo's module imported from ``singleton_decorator`` (``from
    confo.Confo import singleton`` worked): one instance per decorated class."""
    return _SingletonWrapper(cls)


class _BackendView:
    """A backend the core loaded, as ``Confo().backends[name]`` shows it: its name and confo's
    attributes ``namespaces``, ``namespace_name`` (``"*"`` until one is used) and
    ``configurations`` (``{namespace_name: its configurations}``, staged edits included)."""

    def __init__(self, manager, name):
        self._manager = manager
        self.name = name

    @property
    def namespaces(self):
        return list(call(self._manager._native.backend_view, self.name)[0])

    @property
    def namespace_name(self):
        current = call(self._manager._native.backend_view, self.name)[1]
        return "*" if current is None else current

    @property
    def configurations(self):
        _, current, everything = call(self._manager._native.backend_view, self.name)
        if current is None:
            return types.MappingProxyType({})
        return types.MappingProxyType({current: types.MappingProxyType(everything)})

    def __repr__(self):
        return "<confo backend %r>" % self.name


class _Backends(collections.abc.MutableMapping):
    """``Confo().backends``: the loaded backends by name, as confo's dict was. Assigning a
    backend object of one's own (confo's ``AbstractBackend`` interface, credentials loaded)
    loads it under that name, as ``config.backends[name] = obj`` did in confo; reading gives
    that very object, or a view of a backend the core loaded."""

    def __init__(self, manager):
        self._manager = manager

    def __getitem__(self, name):
        objects = self._manager._objects
        if name in objects:
            return objects[name]
        if name in self._manager._native.backends()[0]:
            return _BackendView(self._manager, name)
        raise KeyError(name)

    def __setitem__(self, name, backend):
        self._manager._load_object(name, backend)

    def __delitem__(self, name):
        raise TypeError("a loaded backend cannot be removed (load another under its name to replace it)")

    def __iter__(self):
        return iter(self._manager._native.backends()[0])

    def __len__(self):
        return len(self._manager._native.backends()[0])

    def __repr__(self):
        return repr(dict(self))


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
    def _objects(self):
        """Backend objects of one's own, by the name they were loaded under."""
        objects = self.__dict__.get("_backend_objects")
        if objects is None:
            objects = self.__dict__["_backend_objects"] = {}
        return objects

    @property
    def backends(self):
        """The loaded backends by name, as confo's ``backends`` dict: a backend object of one's
        own is that object, a backend the core loaded a view with confo's attributes.
        ``config.backends[name] = obj`` loads a backend object of one's own."""
        return _Backends(self)

    @property
    def active_backend_name(self):
        """The active backend's name, or None."""
        return self._native.backends()[1]

    @property
    def active_backend(self):
        """The active backend (the object of one's own, or a view), or None."""
        name = self.active_backend_name
        return None if name is None else self.backends[name]

    def _load_object(self, name, backend):
        """Loads a backend object of one's own (confo's interface, credentials loaded)."""
        missing = [m for m in ("get_namespaces", "create_namespace", "use_namespace", "get_all", "set", "persist") if not callable(getattr(backend, m, None))]
        if missing:
            raise BackendTypeException(
                "%r is not a backend: it lacks %s (confo's AbstractBackend interface)" % (backend, ", ".join(missing))
            )
        call(self._native.load_backend_object, name, backend, "python " + type(backend).__name__)
        self._objects[name] = backend

    def load_backend(self, credentials, name, backend_type):
        """Loads a backend from a credentials dictionary: ``{"config_path": ...}`` (files),
        ``{"zookeeper_host", "zookeeper_port", ...}``, ``{"redis_host", "redis_port", ...}``,
        ``{"etcd_host", "etcd_port", ...}``. ``backend_type`` may also be a class of one's own
        implementing confo's ``AbstractBackend`` (it is instantiated and given the
        credentials, and the core calls its methods). Keys a backend does not know are ignored,
        as in confo. Loading a name already loaded (a helper that loads and activates on each
        call) uses the new credentials and keeps that backend's selected namespace and staged
        edits, as confo kept them."""
        if isinstance(backend_type, type):
            # A backend class of one's own (confo's AbstractBackend interface): the core
            # drives an instance of it.
            backend = backend_type()
            backend.load_credentials(credentials)
            self._load_object(name, backend)
            return
        load(self._native, name, kind_of(backend_type), credentials)
        self._objects.pop(name, None)

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
