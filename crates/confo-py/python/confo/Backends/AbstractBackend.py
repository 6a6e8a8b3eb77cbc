"""confo's backend interface, for code that imports it or checks ``isinstance``.

Every backend class of this package counts as an ``AbstractBackend``. Loading a custom Python
subclass into ``Confo`` is not supported yet (the Rust core cannot call it).
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
