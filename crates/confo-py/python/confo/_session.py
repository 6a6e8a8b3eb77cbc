"""The confo API over one native manager; shared by ``Confo`` and the standalone backends."""

import collections.abc
import contextlib
import dataclasses
import gc
import threading

from . import _json, _native
import logging

from .Exceptions import (
    BackendTypeException,
    ConfoError,
    CredentialsTypeException,
    InvalidValueException,
    NamespaceExistsException,
    from_native,
)

_log = logging.getLogger("confo")

#: backend_type numbers (confo's BE constants) → the core's kinds.
KINDS = {1: "file", 2: "zookeeper", 3: "redis", 4: "etcd"}


def call(function, *args, **kwargs):
    """Calls the native core, turning its errors into confo's exceptions."""
    try:
        return function(*args, **kwargs)
    except _native.NativeError as error:
        raise from_native(*error.args) from None


def kind_of(backend_type):
    """The core's name for a backend_type (a BE constant, or a name like "redis")."""
    if isinstance(backend_type, str):
        return backend_type
    try:
        return KINDS[backend_type]
    except (KeyError, TypeError):
        raise BackendTypeException("unknown backend_type %r; use confo.Backends constants" % (backend_type,)) from None


def credentials_json(credentials):
    """A credentials mapping (a dict, a ``configparser`` section, any ``Mapping``) as JSON for
    the core; anything else is a TypeError, as in confo. A value JSON cannot hold (a
    ``datetime``, an object, NaN) is passed as a marker of its type, never as itself: a key the
    backend ignores is dropped with it, as confo ignored it, and a key the backend reads refuses
    it by name (its type is wrong), never echoing the value."""
    if not isinstance(credentials, collections.abc.Mapping):
        raise CredentialsTypeException("credentials must be a dict, not %s" % type(credentials).__name__)
    plain = {}
    for key, value in credentials.items():
        key = key if isinstance(key, str) else str(key)
        try:
            _json.dumps(value)
        except (TypeError, ValueError):
            value = {"$confo_not_json": type(value).__name__}
        plain[key] = value
    return _json.dumps(plain)


def load(native, name, kind, credentials):
    """Loads (or replaces) backend ``name``; keys it does not know are ignored, as confo did,
    and logged at debug level."""
    ignored = call(native.load_backend, name, kind, credentials_json(credentials))
    if ignored:
        _log.debug("confo: ignored credentials keys %s of backend %r", ", ".join(ignored), name)


def _set(method, config, field, value):
    """Stages a value, with a message naming the place for a number JSON cannot hold (the
    core converts values itself; TypeError for other types, as json.dumps raised)."""
    try:
        if field is None:
            call(method, config, value)
        else:
            call(method, config, field, value)
    except ValueError as error:
        if isinstance(error, ConfoError):
            raise
        where = config if field is None else "%s.%s" % (config, field)
        raise InvalidValueException(
            "%s: NaN and Infinity are not JSON numbers, so they cannot be stored (%s)" % (where, error)
        ) from None


class Session:
    """Namespaces and configurations of the active backend of one native manager."""

    def __init__(self):
        self._native = _native.Manager()

    # ----- namespaces -----

    def use_namespace(self, system_name):
        """Selects a namespace and reloads it (staged edits are kept)."""
        call(self._native.use_namespace, system_name)

    def get_namespaces(self):
        """{"all_namespaces": [...], "current_namespace": name or "*"} as in confo."""
        all_namespaces, current = call(self._native.namespaces)
        return {"all_namespaces": all_namespaces, "current_namespace": current if current is not None else "*"}

    def create_namespace(self, namespace, exist_ok=False):
        """Creates a namespace in the store now. NamespaceExistsException if it exists, unless
        ``exist_ok`` (then it is left as it is)."""
        if not call(self._native.create_namespace, namespace) and not exist_ok:
            raise NamespaceExistsException("namespace %s already exists" % namespace)

    def delete_namespace(self, namespace, force=False):
        """Deletes a namespace from the store now; one with configurations needs force=True."""
        call(self._native.remove_namespace, namespace, force)

    # ----- reading -----

    def get_all(self):
        """Every configuration of the current namespace, staged edits included."""
        # Thousands of new dicts and lists would set off the cyclic collector over and over
        # while they are built (none of them can be part of a cycle yet): it waits until the
        # end, as json.loads' callers often make it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return call(self._native.get_all)
        finally:
            if collecting:
                gc.enable()

    def get(self, name, field=None):
        """A configuration (dict), or one field of it; None if missing, or before a namespace
        is selected, as confo's callers expect."""
        try:
            if field is None:
                return self._native.get(name)
            return self._native.get_field(name, field)
        except _native.NativeError as error:
            if error.args and error.args[0] == "no_namespace_selected":
                return None
            raise from_native(*error.args) from None

    def get_as(self, name, cls):
        """A configuration built into ``cls`` (a dataclass, or anything taking the fields as
        keyword arguments). ConfigurationNotFoundException if it does not exist."""
        value = self.get(name)
        if value is None:
            from .Exceptions import ConfigurationNotFoundException

            raise ConfigurationNotFoundException("configuration %s not found" % name)
        if dataclasses.is_dataclass(cls):
            known = {f.name for f in dataclasses.fields(cls)}
            value = {k: v for k, v in value.items() if k in known}
        return cls(**value)

    def get_count(self):
        """The number of configurations in the current namespace."""
        return call(self._native.count)

    def stored(self, name):
        """A configuration as last read from the store, without staged edits."""
        return call(self._native.stored, name)

    # ----- staging edits -----

    def set(self, config, field, value):
        """Sets a field (staged until persist); ``set(config, dict, None)`` replaces the whole
        configuration, as in confo."""
        if isinstance(field, str):
            # The common case, called directly (a call is a few hundred nanoseconds).
            try:
                self._native.set(config, field, value)
            except _native.NativeError as error:
                raise from_native(*error.args) from None
            except ValueError:
                _set(self._native.set, config, field, value)
        elif isinstance(field, dict) and value is None:
            _set(self._native.replace, config, None, field)
        else:
            raise InvalidValueException(
                "set(config, field, value) takes a field name, or a dict and None to replace the configuration"
            )

    def set_secret(self, config, field, value):
        """Sets a field to a secret, encrypted with the keyring's primary key before it is
        staged ($CONFO_KEYS, else ~/.config/confo/keys.toml; ``confo keys new`` makes one).
        ``get`` returns it decrypted while the keyring is at hand, sealed otherwise."""
        _set(self._native.set_secret, config, field, value)

    def unset_secret(self, config, field):
        """Turns a secret back into a plain value on purpose, now (not staged): opened with
        the keyring and written in the clear. ``field`` is a field name or a JSON pointer
        (``/db/password``). Every other write keeps a sealed field sealed: a plain value set
        where a secret is is sealed again (InvalidValueException without a keyring)."""
        call(self._native.unset_secret, config, field)

    def delete(self, config, field=None):
        """Deletes a configuration, or one field of it (staged until persist)."""
        if field is None:
            call(self._native.remove, config)
        else:
            call(self._native.remove_field, config, field)

    def discard(self):
        """Drops every staged edit."""
        call(self._native.discard)

    def staged(self):
        """Staged edits, as "namespace/configuration"."""
        return call(self._native.staged)

    def stale_edits(self):
        """Staged edits whose stored configuration changed underneath (persist would conflict)."""
        return call(self._native.stale_edits)

    # ----- writing -----

    def history(self, config, limit=None):
        """The recorded history of a configuration of the current namespace, newest first: a
        list of dicts with number, operation (create, change, delete, rollback, external), time
        (ISO 8601, UTC), actor ($CONFO_ACTOR, else user@host), host, tool, message, restores and
        value (None for a deletion). HistoryOffException if the backend keeps no history."""
        return call(self._native.history, config, limit)

    def rollback(self, config, number):
        """Writes revision ``number``'s value of a configuration again, now (not staged), as a
        new revision recorded as a rollback; returns its number. Never deletes. ConflictException
        if the configuration changed since this session loaded it; RevisionNotFoundException for
        a revision that is not kept."""
        return call(self._native.rollback, config, number)

    @property
    def from_snapshot(self):
        """True when the current namespace was read from its last-known-good snapshot because
        its store was unavailable (backends loaded with ``"snapshots": "on"``); writes then
        raise UnavailableException until the store is back."""
        return call(self._native.snapshot_info) is not None

    def snapshot_info(self):
        """Where the current namespace came from when it was a snapshot: a dict with taken (ISO
        8601, UTC), age (seconds), reason and path; None when it came from the store."""
        return call(self._native.snapshot_info)

    def set_schema(self, schema, config=None, mode=None):
        """Sets the current namespace's default JSON Schema (or, with ``config``, that
        configuration's own) and/or its mode ("enforce", "warn" or "off"; kept when None). Once
        set, a persist that breaks it raises SchemaViolationException and writes nothing."""
        call(self._native.set_schema, schema, config, mode)

    def get_schema(self):
        """The current namespace's schemas: {"mode", "default", "configurations"}, or None."""
        return call(self._native.get_schema)

    def validate(self, namespace=None):
        """Every violation of what is stored in a namespace (the current one by default), as
        dicts with namespace, configuration, pointer and message."""
        return call(self._native.validate, namespace)

    def persist(self, namespace=False, config=False, force=False):
        """Writes staged edits: everything, one namespace, or one configuration (confo's
        signature: without a namespace, everything, whatever ``config`` says, as confo did).
        ConflictException if someone else changed one meanwhile (unless force)."""
        namespace = namespace or None
        config = (config or None) if namespace is not None else None
        call(self._native.persist, namespace, config, force)

    def reload(self):
        """Re-reads the current namespace from the store (staged edits stay on top)."""
        call(self._native.reload)

    @contextlib.contextmanager
    def batch(self):
        """Stages edits in a ``with`` block: persisted when it ends, discarded if it raises."""
        try:
            yield self
        except BaseException:
            self.discard()
            raise
        self.persist()

    # ----- live updates -----

    def watch(self, namespace=None, config=None, timeout=None):
        """Watches a namespace (default: the current one) from now on; iterate the result for
        each change as a dict like {"event": "changed", "namespace": ..., "configuration": ...,
        "value": {...}}. With ``timeout`` (seconds), iteration stops after that long without
        an event."""
        if namespace is None:
            namespace = self.get_namespaces()["current_namespace"]
        return _Events(call(self._native.watch, namespace, config), timeout)

    def watch_callback(self, callback, namespace=None, config=None):
        """Calls ``callback(event)`` on a thread for each change until ``.stop()`` is called
        on the returned handle (or the callback returns False)."""
        if namespace is None:
            namespace = self.get_namespaces()["current_namespace"]
        watch = call(self._native.watch, namespace, config)
        return _CallbackWatch(watch, callback)


class _Events:
    """An iterator of change events (the subscription starts when it is created)."""

    def __init__(self, watch, timeout):
        self._watch = watch
        self._timeout = timeout

    def __iter__(self):
        return self

    def __next__(self):
        event = call(self._watch.next_json, self._timeout)
        if event is None:
            raise StopIteration
        return _json.loads(event)


class _CallbackWatch:
    """A watch running a callback on its own thread."""

    def __init__(self, watch, callback):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(watch, callback), daemon=True)
        self._thread.start()

    def _run(self, watch, callback):
        while not self._stop.is_set():
            event = call(watch.next_json, 0.2)
            if event is not None and callback(_json.loads(event)) is False:
                return

    def stop(self):
        """Stops calling the callback (within 0.2 s)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
