"""confo's exceptions: the original classes, and new ones for what confo used to print.

Every class derives from ``ConfoError``. Where a new error matches an original class it
subclasses it, so existing ``except`` clauses keep working.
"""


class ConfoError(Exception):
    """Base of every confo exception."""

    def __str__(self):
        # KeyError would quote the message; every confo error reads as plain text.
        return str(self.args[0]) if self.args else ""


# ----- the original confo classes -----


class BackendsActivationException(ConfoError):
    """No backend is active (load one and call activate_backend)."""


class BackendNotFoundException(ConfoError, KeyError):
    """No loaded backend has this name."""


class FileNotFoundException(ConfoError, FileNotFoundError):
    """The file backend's config_path is missing (also a ``FileNotFoundError``, as confo's
    ``os.listdir`` raised)."""


class NotAFolderException(FileNotFoundException, NotADirectoryError):
    """The file backend's config_path is a file, not a folder (also a ``NotADirectoryError``)."""


class ZookeeperHostNotFoundException(ConfoError):
    """The ZooKeeper credentials lack zookeeper_host (or it is invalid)."""


class ZookeeperPortNotFoundException(ConfoError, ValueError):
    """The ZooKeeper credentials lack zookeeper_port (or it is not a port)."""


class NamespaceExistsException(ConfoError):
    """create_namespace of a namespace that exists (confo only printed this)."""


class NamespaceNotLoadedException(ConfoError, KeyError):
    """No namespace is selected (call use_namespace); also a ``KeyError``, as in confo."""


# ----- new: errors confo printed, and errors of features confo did not have -----


class NamespaceNotFoundException(NamespaceNotLoadedException):
    """use_namespace (or another call) named a namespace that does not exist."""


class ConfigurationNotFoundException(ConfoError, KeyError):
    """A configuration that must exist (to delete it, say) does not."""


class FieldNotFoundException(ConfoError, KeyError):
    """A field that must exist (to delete it) does not."""


class CredentialsException(ConfoError, ValueError):
    """A credentials dictionary or backend spec cannot be used; the message names the key."""


class MissingCredentialsException(CredentialsException, KeyError):
    """A key the backend needs is not in the credentials (also a ``KeyError``, as in confo)."""


class CredentialsTypeException(CredentialsException, TypeError):
    """The credentials are not a dictionary (``None``, say); also a ``TypeError``."""


class BackendTypeException(ConfoError, ValueError, TypeError):
    """``backend_type`` is not a backend constant nor a backend's name (also ``TypeError``
    and ``ValueError``)."""


class InvalidNameException(ConfoError, ValueError):
    """A namespace or configuration name breaks a rule (shared or of the backend)."""


class InvalidValueException(ConfoError, ValueError):
    """A value cannot be stored (a configuration must be a dict of JSON values)."""


class NamespaceNotEmptyException(ConfoError):
    """delete_namespace of a namespace with configurations, without force=True."""


class CorruptDataException(ConfoError):
    """Stored data is not a JSON object; the message names every bad file, key or znode."""


class ConflictException(ConfoError):
    """Someone else changed the configuration since it was loaded; the edit stays staged."""


class TooLargeException(ConfoError, ValueError):
    """A configuration is larger than the backend accepts."""


class UnavailableException(ConfoError, ConnectionError):
    """The store cannot be reached or did not answer in time."""


class UnauthorizedException(ConfoError, PermissionError):
    """The store refused the credentials or the operation."""


class InsecureStoreException(UnauthorizedException):
    """The store holds something confo refuses to trust (a ZooKeeper node others may change, a
    file link leaving the store's folder); nothing was read from it or written to it."""


class SecretException(ConfoError, ValueError):
    """A secret cannot be sealed or opened (no key, the wrong key, a changed or moved
    ciphertext, a bad keyring); names the configuration and field, never the value."""


class PersistIncompleteException(ConfoError):
    """A persist stopped part-way; the message lists what was and was not written."""


class RevisionNotFoundException(ConfoError, KeyError):
    """A revision of a configuration's history that was never recorded or is no longer kept."""


class HistoryOffException(ConfoError):
    """The backend keeps no history (its spec or credentials say ``history=off``)."""


class SchemaViolationException(InvalidValueException):
    """A write that breaks the namespace's schema (mode ``enforce``); nothing was written.

    ``violations`` lists every one as a dict: namespace, configuration, pointer (a JSON
    pointer, empty for the whole configuration) and message (the rule broken)."""

    def __init__(self, message, violations=()):
        super().__init__(message)
        self.violations = list(violations)


_BY_KIND = {
    "not_found:revision": RevisionNotFoundException,
    "not_found:history": HistoryOffException,
    "not_found:backend": BackendNotFoundException,
    "not_found:namespace": NamespaceNotFoundException,
    "not_found:configuration": ConfigurationNotFoundException,
    "not_found:field": FieldNotFoundException,
    "not_found:store": FileNotFoundException,
    "not_found:file": FileNotFoundException,
    "invalid_name": InvalidNameException,
    "invalid_value": InvalidValueException,
    "already_exists": NamespaceExistsException,
    "not_empty": NamespaceNotEmptyException,
    "no_active_backend": BackendsActivationException,
    "no_namespace_selected": NamespaceNotLoadedException,
    "corrupt": CorruptDataException,
    "conflict": ConflictException,
    "too_large": TooLargeException,
    "unavailable": UnavailableException,
    "unauthorized": UnauthorizedException,
    "insecure": InsecureStoreException,
    "persist_incomplete": PersistIncompleteException,
    "secret": SecretException,
    "invalid_spec:zookeeper_host": ZookeeperHostNotFoundException,
    "invalid_spec:zookeeper_port": ZookeeperPortNotFoundException,
    "invalid_spec:config_path": FileNotFoundException,
}


class MissingConfigPathException(FileNotFoundException, MissingCredentialsException):
    """The file backend's credentials have no ``config_path`` (a ``KeyError`` in confo)."""


#: A missing credentials key → its class (else MissingCredentialsException).
_MISSING = {
    "config_path": MissingConfigPathException,
    "zookeeper_host": ZookeeperHostNotFoundException,
    "zookeeper_port": ZookeeperPortNotFoundException,
}


#: (confo class, built-in OSError class) → a class that is both.
_OS_CLASSES = {}


def _with_os_error(error, errnum):
    """``error`` as also the built-in ``OSError`` its errno makes (``PermissionError`` for
    EACCES and EPERM; ``OSError`` for the rest), as confo's own file writes raised, with
    ``errno`` and ``strerror`` set."""
    import errno as errnos
    import os

    builtin = PermissionError if errnum in (errnos.EACCES, errnos.EPERM) else OSError
    cls = type(error)
    if not issubclass(cls, builtin):
        key = (cls, builtin)
        if key not in _OS_CLASSES:
            _OS_CLASSES[key] = type(cls.__name__, (cls, builtin), {"__module__": cls.__module__, "__doc__": cls.__doc__})
        error = _OS_CLASSES[key](*error.args)
    error.errno = errnum
    error.strerror = os.strerror(errnum)
    return error


def from_native(kind, message, details=None, errnum=None):
    """The exception for a native error's kind (also an ``OSError`` when the operating system
    refused something: ``errnum`` is its errno)."""
    error = _from_native(kind, message, details)
    return error if errnum is None else _with_os_error(error, errnum)


def _from_native(kind, message, details=None):
    if kind == "schema_violation":
        import json

        return SchemaViolationException(message, json.loads(details) if details else ())
    if kind.startswith("invalid_spec_not_a_folder:"):
        return NotAFolderException(message)
    if kind.startswith("invalid_spec_missing:"):
        return _MISSING.get(kind.split(":", 1)[1], MissingCredentialsException)(message)
    if kind.startswith("invalid_spec") and kind not in _BY_KIND:
        return CredentialsException(message)
    return _BY_KIND.get(kind, ConfoError)(message)
