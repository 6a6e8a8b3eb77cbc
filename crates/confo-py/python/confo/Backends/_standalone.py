"""A backend used on its own, as confo's backend classes could be."""

import json

from .._session import Session, call


class StandaloneBackend(Session):
    """One backend of a kind, with confo's backend API (``load_credentials`` first)."""

    KIND = None

    def load_credentials(self, credentials):
        """Connects with a credentials dictionary and loads the namespace list."""
        call(self._native.load_backend, "backend", self.KIND, json.dumps(credentials))
        call(self._native.activate_backend, "backend")
