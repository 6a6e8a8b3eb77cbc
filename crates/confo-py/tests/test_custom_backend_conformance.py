"""The shared conformance suite (crates/confo/src/conformance.rs), ported to a backend of one's
own written against confo's ``AbstractBackend`` and loaded as confo loaded one
(``config.backends[name] = obj``), through the session API its users call.

A custom backend declares what it can do: it keeps no versions (the core uses hashes of the
content, so a conflict is found by reading before writing, not atomically), has no atomic
preconditions, sends no change notifications, keeps no history, stores no metadata (schemas).
Each function of the suite runs here when the backend declares what it needs, and is skipped
naming the capability it lacks otherwise (``pytest -rs`` lists them). Two classes run it: one
with confo's abstract methods only, one that can also delete (``delete_namespace``,
``delete``).
"""

import copy
import decimal

import pytest

from confo.Backends.AbstractBackend import AbstractBackend
from confo.Confo import Confo
from confo.Exceptions import (
    ConflictException,
    InvalidNameException,
    InvalidValueException,
    NamespaceNotFoundException,
)


class ConfoStyleBackend(AbstractBackend):
    """confo's four abstract methods, over a dict of namespaces (a store of its own)."""

    capabilities = frozenset()

    def __init__(self):
        self.configurations = {}
        self.namespace_name = None
        self.namespaces = []
        self.store = {}
        self.writes = 0

    def load_credentials(self, credentials):
        self.store = credentials["store"]
        self.namespaces = sorted(self.store)

    def create_namespace(self, namespace):
        self.store.setdefault(namespace, {})
        self.namespaces = sorted(self.store)

    def persist(self, namespace=False, config=False):
        for ns in [namespace] if namespace else list(self.configurations):
            for name, value in self.configurations.get(ns, {}).items():
                if not config or name == config:
                    self.store.setdefault(ns, {})[name] = copy.deepcopy(value)
                    self.writes += 1

    def reload(self):
        stored = self.store.get(self.namespace_name, {})
        self.configurations[self.namespace_name] = copy.deepcopy(stored)


class DeletingBackend(ConfoStyleBackend):
    """The same, able to delete namespaces and configurations."""

    capabilities = frozenset({"deletes"})

    def delete_namespace(self, namespace):
        self.store.pop(namespace, None)
        self.configurations.pop(namespace, None)
        self.namespaces = sorted(self.store)

    def delete(self, config):
        self.configurations.get(self.namespace_name, {}).pop(config, None)
        self.store.get(self.namespace_name, {}).pop(config, None)


#: What a function of the suite needs beyond reading and writing, by name. The ones needing a
#: capability no custom backend declares are listed so that a run says what it skipped.
SUITE = {
    "namespaces_create_list_delete": set(),
    "configurations_write_read_delete": set(),
    "values_round_trip": set(),
    "point_reads_agree_with_bulk_reads": set(),
    "numbers_round_trip_exactly": set(),
    "bulk_read": set(),
    "batch_write": {"deletes"},
    "unknown_things_are_typed_errors": set(),
    "invalid_names_are_refused": set(),
    "the_deepest_value_a_write_accepts_reads_back": set(),
    "managers_conflict": set(),
    "versions_change_on_write": {"versions"},
    "preconditions": {"atomic preconditions"},
    "capabilities_hold": {"notifications"},
    "watch_sees_changes": {"notifications"},
    "auto_refresh_keeps_the_cache_current": {"notifications"},
    "history_records_who_and_rolls_back": {"history"},
    "history_purge_rewrites_every_revision": {"history"},
    "history_numbers_concurrent_writes": {"history"},
    "history_retention_keeps_the_newest": {"history"},
    "schemas_are_enforced_before_anything_is_written": {"metadata"},
    "a_schema_of_256_kib_is_kept": {"metadata"},
    "a_corrupt_schema_document_never_blocks_its_own_repair": {"metadata"},
    "schemas_change_concurrently_with_history": {"metadata", "history"},
    "field_updates_check_the_schemas_stored_now": {"metadata"},
    "corrupt_entries_block_only_themselves": {"raw writes"},
    "compact_load_reads_what_load_reads": {"compact reads"},
}


class Session:
    """A session on one custom backend object, loaded confo's way."""

    def __init__(self, cls, unique):
        self.store = {}
        self.backend = cls()
        self.backend.load_credentials({"store": self.store})
        self.config = Confo()
        self.config.backends[unique] = self.backend
        self.config.activate_backend(unique)
        self.deletes = "deletes" in cls.capabilities

    def fresh(self, namespace):
        self.config.create_namespace(namespace, exist_ok=True)
        self.config.use_namespace(namespace)
        return namespace


@pytest.fixture(params=[ConfoStyleBackend, DeletingBackend], ids=["confo-style", "deleting"])
def session(request, unique):
    return Session(request.param, unique)


def _run(session, name):
    lacking = SUITE[name] - session.backend.capabilities
    if lacking:
        pytest.skip("%s: needs %s, which %s does not declare" % (name, ", ".join(sorted(lacking)), type(session.backend).__name__))
    globals()["_" + name](session)


@pytest.mark.parametrize("name", sorted(SUITE))
def test_conformance(session, name):
    _run(session, name)


def test_every_function_of_the_suite_is_listed():
    """A function added to the Rust suite must be ported or listed here with what it needs."""
    import pathlib
    import re

    source = pathlib.Path(__file__).resolve().parents[2] / "confo" / "src" / "conformance.rs"
    text = source.read_text()
    body = text[text.index("suite! { $;"):]
    names = set(re.findall(r"^    async fn ([a-z0-9_]+)\(", body, re.M))
    names |= set(re.findall(r"^pub async fn ([a-z0-9_]+)\((?:store|backend|a|watching|first)", text, re.M))
    # (Helpers and the failover harness, not functions a backend runs.)
    names -= {"write_through_failover", "watch_misses_nothing_while_down", "through_arc", "store_a_secret", "up", "down"}
    assert names <= set(SUITE), sorted(names - set(SUITE))
    for name, needs in SUITE.items():
        if not needs:
            assert "_" + name in globals(), name


# ----- the ported functions -----


def _namespaces_create_list_delete(s):
    c = s.config
    assert "ns" not in c.get_namespaces()["all_namespaces"]
    c.create_namespace("ns")
    c.create_namespace("ns", exist_ok=True)
    listed = c.get_namespaces()["all_namespaces"]
    assert "ns" in listed and listed == sorted(listed)
    c.use_namespace("ns")
    assert c.get_count() == 0 and c.get_all() == {}
    c.set("database", "host", "h")
    c.persist()
    if s.deletes:
        c.delete_namespace("ns", force=True)
        assert "ns" not in c.get_namespaces()["all_namespaces"] and "ns" not in s.store
        c.create_namespace("ns")
        c.use_namespace("ns")
        assert c.get_count() == 0, "the deletion took its configurations with it"


def _configurations_write_read_delete(s):
    c = s.config
    s.fresh("cfg")
    value = {"zeta": 1, "alpha": "two", "mid": [1, 2, {"x": None}], "nested": {"b": True, "a": 1.5}}
    c.set("database", copy.deepcopy(value), None)
    c.persist()
    c.reload()
    assert c.get("database") == value
    assert list(c.get("database")) == ["zeta", "alpha", "mid", "nested"], "field order round-trips"
    assert s.store["cfg"]["database"] == value
    c.set("database", {"only": "this"}, None)
    c.persist()
    c.reload()
    assert c.get("database") == {"only": "this"} == s.store["cfg"]["database"]
    if s.deletes:
        c.delete("database")
        c.persist()
        c.reload()
        assert c.get("database") is None and "database" not in s.store["cfg"]


def _values_round_trip(s):
    c = s.config
    s.fresh("val")
    value = {
        "s": 'ünïcödé ✓ "quoted" \n newline', "i": -42, "big": 9007199254740993, "f": 0.1,
        "t": True, "n": None, "empty_obj": {}, "empty_list": [],
        "admins": ["tshepang.maila@sambeconsulting.com", "kabelo.masemola@sambe.co.za"],
    }
    for name in ["app.prod", "ünï", "with space", "x..y"]:
        c.set(name, copy.deepcopy(value), None)
    c.persist()
    c.reload()
    assert list(c.get_all()) == ["app.prod", "with space", "x..y", "ünï"]
    assert all(v == value for v in c.get_all().values())
    assert all(type(c.get(n, "big")) is int and type(c.get(n, "f")) is float for n in c.get_all())


def _point_reads_agree_with_bulk_reads(s):
    c = s.config
    s.fresh("point")
    names = ["db", "app.prod", "ünï", "with space", "x..y", "a-b"]
    for n in names:
        c.set(n, {"name": n, "n": 1}, None)
    c.persist()
    c.reload()
    bulk = c.get_all()
    for n in names:
        assert c.get(n) == bulk[n] == {"name": n, "n": 1}, n
    assert c.get("d") is None, "a prefix of a name is not the name"
    assert c.get("absent") is None


def _numbers_round_trip_exactly(s):
    c = s.config
    s.fresh("num")
    value = {
        "beyond_u64": 123456789012345678901234567890, "below_i64": -9223372036854775809,
        "u64_max": 18446744073709551615, "seventeen_digits": 0.30000000000000004,
        "planck": 1.602176634e-19, "tiny": 5e-324, "max_double": 1.7976931348623157e308,
        "beyond_double": decimal.Decimal("1E+400"), "long_fraction": decimal.Decimal("0.1000000000000000000000000001"),
        "nested": [{"id": 340282366920938463463374607431768211457}],
    }
    c.set("limits", copy.deepcopy(value), None)
    c.persist()
    c.reload()
    got = c.get("limits")
    assert got == value
    for field, number in value.items():
        assert type(got[field]) is type(number), field
    # Written again unchanged, the numbers are as they were.
    c.set("limits", got, None)
    c.persist()
    c.reload()
    assert c.get("limits") == value


def _bulk_read(s):
    c = s.config
    s.fresh("bulk_other")
    c.set("elsewhere", {}, None)
    c.persist()
    s.fresh("bulk")
    for i in range(150):
        c.set("c%03d" % i, {"i": i, "pad": "x" * i}, None)
    c.persist()
    c.reload()
    data = c.get_all()
    assert len(data) == 150 and c.get_count() == 150
    assert all(data["c%03d" % i]["i"] == i for i in range(150))
    assert "elsewhere" not in data


def _batch_write(s):
    c = s.config
    s.fresh("batch")
    c.set("old", "v", 0)
    c.persist()
    c.set("a", "v", 1)
    c.delete("old")
    c.set("b", "v", 2)
    c.persist()
    assert s.store["batch"] == {"a": {"v": 1}, "b": {"v": 2}}
    c.reload()
    assert sorted(c.get_all()) == ["a", "b"]


def _unknown_things_are_typed_errors(s):
    with pytest.raises(NamespaceNotFoundException):
        s.config.use_namespace("ghost")


def _invalid_names_are_refused(s):
    c = s.config
    s.fresh("names")
    writes = s.backend.writes
    for bad in ["a/b", "", ".hidden"]:
        with pytest.raises(InvalidNameException):
            c.set(bad, "v", 1)
    c.persist()
    assert s.backend.writes == writes and s.store["names"] == {}
    with pytest.raises(InvalidNameException):
        c.create_namespace("a/b")


def _the_deepest_value_a_write_accepts_reads_back(s):
    c = s.config
    s.fresh("deep")
    nested = []
    for _ in range(127 - 2):  # confo::model::json::MAX_DEPTH levels with the configuration's own
        nested = [nested]
    c.set("deep", {"v": nested}, None)
    c.persist()
    c.reload()
    assert c.get("deep") == {"v": nested}
    with pytest.raises(InvalidValueException):
        c.set("deeper", {"v": [nested]}, None)
        c.persist()
    assert "deeper" not in s.store["deep"]


def _managers_conflict(s):
    """No atomic preconditions, but a conflict is still found by reading before writing: a
    configuration changed behind the session's back is not overwritten, unless forced."""
    c = s.config
    s.fresh("conflict")
    c.set("db", "port", 1)
    c.persist()
    c.set("db", "port", 2)
    s.store["conflict"]["db"] = {"port": 9}
    with pytest.raises(ConflictException):
        c.persist()
    assert s.store["conflict"]["db"] == {"port": 9}
    c.persist(force=True)
    assert s.store["conflict"]["db"] == {"port": 2}
