"""``FileBackend``: JSON files in folders (config_path)."""

from ._standalone import StandaloneBackend


class FileBackend(StandaloneBackend):
    """JSON files in folders (config_path), usable on its own: ``load_credentials(credentials)`` first."""

    KIND = "file"
