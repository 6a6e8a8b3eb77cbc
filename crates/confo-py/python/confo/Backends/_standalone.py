"""A backend used on its own, as confo's backend classes could be."""

import copy
import types

from .._session import Session, call, load


class StandaloneBackend(Session):
    """One backend of a kind, with confo's backend API (``load_credentials`` first).

    confo's attributes are here as read-only views of the native state: ``credentials`` (a
    copy of what was given), ``config_path`` (file backends), ``namespaces``,
    ``namespace_name`` (``"*"`` until one is used) and ``configurations`` (the current
    namespace's configurations, staged edits included, by namespace)."""

    KIND = None

    def __init__(self):
        super().__init__()
        self._credentials = None

    def load_credentials(self, credentials):
        """Connects with a credentials dictionary and loads the namespace list."""
        load(self._native, "backend", self.KIND, credentials)
        call(self._native.activate_backend, "backend")
        self._credentials = copy.deepcopy(credentials)

    def get_namespaces(self):
        """As in confo; before ``load_credentials``: no namespaces, none selected."""
        if self._credentials is None:
            return {"all_namespaces": [], "current_namespace": "*"}
        return super().get_namespaces()

    # ----- confo's attributes, read-only -----

    @property
    def credentials(self):
        return copy.deepcopy(self._credentials)

    @property
    def config_path(self):
        return (self._credentials or {}).get("config_path")

    @property
    def namespaces(self):
        return list(self.get_namespaces()["all_namespaces"])

    @property
    def namespace_name(self):
        return self.get_namespaces()["current_namespace"]

    @property
    def configurations(self):
        current = self.namespace_name
        if self._credentials is None or current == "*":
            return types.MappingProxyType({})
        return types.MappingProxyType({current: types.MappingProxyType(self.get_all())})

    # ----- confo's persist helpers -----

    def persist_everything(self):
        """Writes every staged edit (``persist()``)."""
        self.persist()

    def persist_namespace(self, namespace):
        """Writes the staged edits of one namespace."""
        self.persist(namespace=namespace)

    def persist_configuration(self, namespace, configuration):
        """Writes the staged edit of one configuration."""
        self.persist(namespace=namespace, config=configuration)
