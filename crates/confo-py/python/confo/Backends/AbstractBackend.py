"""confo's backend interface, as confo 0.1.6.2 defined it, for backends of one's own.

A subclass implements ``load_credentials``, ``create_namespace``, ``persist`` and ``reload``
and inherits the rest, exactly as in confo: ``use_namespace``, ``get_namespaces``, ``get_all``,
``get``, ``set`` and ``get_count`` work on the class-level ``configurations`` dict (shared by
every instance that does not make its own), ``namespace_name`` and ``namespaces``. It is used
the ways confo allowed: ``Confo().backends[name] = MyBackend()`` (credentials loaded by the
caller), or ``Confo().load_backend(credentials, name, backend_type=MyBackend)``.

The core then drives it through those methods (``delete`` / ``delete_namespace`` too, if the
class has them): a backend of one's own keeps no versions (they are hashes of the content, so
a conflict is still found, by reading before writing, but not atomically), sends no change
notifications (watchers poll), and writes a batch one configuration at a time.

Every backend class of this package counts as an ``AbstractBackend`` too.
"""

import logging
from abc import ABC, abstractmethod

from ..Exceptions import NamespaceNotLoadedException

_log = logging.getLogger("confo")


class AbstractBackend(ABC):
    """The methods confo's backends implement, with confo's own for the shared part."""

    configurations = {}
    namespace_name = None
    namespaces = []

    @abstractmethod
    def load_credentials(self, credentials):
        """Connects with a credentials dictionary."""

    def use_namespace(self, system_name):
        """Selects a namespace and reloads it (an unknown one is only said, as in confo)."""
        if system_name in self.get_namespaces()["all_namespaces"]:
            self.namespace_name = system_name
            self.reload()
        else:
            _log.warning("Namespace: %s does not exist", system_name)

    def get_namespaces(self):
        """{"all_namespaces": namespaces, "current_namespace": namespace_name}."""
        return {"all_namespaces": self.namespaces, "current_namespace": self.namespace_name}

    @abstractmethod
    def create_namespace(self, namespace):
        """Creates a namespace."""

    def get_all(self):
        """The current namespace's configurations (NamespaceNotLoadedException if none is)."""
        if self.namespace_name in self.namespaces:
            return self.configurations[self.namespace_name]
        raise NamespaceNotLoadedException("Please select namespace")

    def get(self, name, field=None):
        """A configuration, or one field of it; None if it is not set."""
        try:
            if field is not None:
                return self.configurations[self.namespace_name][name][field]
            return self.configurations[self.namespace_name][name]
        except (KeyError, TypeError, IndexError):
            return None

    def set(self, config, field, value):
        """Sets a field; ``set(config, dict, None)`` replaces the configuration."""
        if isinstance(field, str):
            try:
                self.configurations[self.namespace_name][config][field] = value
            except (KeyError, TypeError):
                self.configurations.setdefault(self.namespace_name, {})[config] = {field: value}
        elif isinstance(field, (dict, list)) and value is None:
            self.configurations.setdefault(self.namespace_name, {})[config] = field

    @abstractmethod
    def persist(self, namespace, config):
        """Writes staged edits."""

    def get_count(self):
        """The number of configurations of the current namespace."""
        return len(self.get_all())

    @abstractmethod
    def reload(self):
        """Re-reads the current namespace."""


def _register():
    from ._standalone import StandaloneBackend

    AbstractBackend.register(StandaloneBackend)


_register()
