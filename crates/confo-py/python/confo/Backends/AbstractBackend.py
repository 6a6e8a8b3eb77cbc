"""confo's backend interface, for code that imports it or checks ``isinstance``.

Every backend class of this package counts as an ``AbstractBackend``. A subclass of one's own
is loaded with ``Confo().load_backend(credentials, name, backend_type=MyBackend)``: the core
calls its ``get_namespaces``, ``create_namespace``, ``use_namespace``, ``get_all``, ``set``,
``persist`` (and ``delete`` / ``delete_namespace`` if it has them). Versions are hashes of the
content, so conflicts are still found (by reading first, not atomically); there are no change
notifications (watchers poll); a batch is written one configuration at a time.
"""

from abc import ABC, abstractmethod


class AbstractBackend(ABC):
    """The methods confo's backends implement."""

    @abstractmethod
    def load_credentials(self, credentials):
        """Connects with a credentials dictionary."""

    @abstractmethod
    def create_namespace(self, namespace):
        """Creates a namespace."""

    @abstractmethod
    def persist(self, namespace, config):
        """Writes staged edits."""

    @abstractmethod
    def reload(self):
        """Re-reads the current namespace."""


def _register():
    from ._standalone import StandaloneBackend

    AbstractBackend.register(StandaloneBackend)


_register()
