"""A backend used on its own, as confo's backend classes could be."""


from .._session import Session, call, load


class StandaloneBackend(Session):
    """One backend of a kind, with confo's backend API (``load_credentials`` first)."""

    KIND = None

    def load_credentials(self, credentials):
        """Connects with a credentials dictionary and loads the namespace list."""
        load(self._native, "backend", self.KIND, credentials)
        call(self._native.activate_backend, "backend")
