"""Schemas from Python: set_schema, get_schema, validate, and SchemaViolationException."""

import pytest

from confo.Exceptions import InvalidValueException, SchemaViolationException

SCHEMA = {
    "type": "object",
    "properties": {"host": {"type": "string"}, "port": {"type": "integer", "maximum": 65535}},
    "required": ["host"],
}


def test_a_persist_that_breaks_the_schema_raises_and_writes_nothing(sales, configurations):
    config = sales
    config.set("database", "host", "db")
    config.persist()
    config.set_schema(SCHEMA)
    assert config.get_schema()["mode"] == "enforce"
    config.set("database", "port", 70000)
    config.set("other", "port", "x")
    with pytest.raises(SchemaViolationException) as raised:
        config.persist()
    error = raised.value
    assert isinstance(error, InvalidValueException) and isinstance(error, ValueError)
    found = {(v["configuration"], v["pointer"], v["message"]) for v in error.violations}
    assert ("database", "/port", "70000 is greater than the maximum of 65535") in found
    assert ("other", "", '"host" is a required property') in found
    assert "sales/database: /port: 70000" in str(error)
    # Nothing written; the edits stay staged, and fixing them lets the persist through.
    assert not (configurations / "sales" / "other.json").exists()
    assert config.stored("database") == {"host": "db"}
    config.set("database", "port", 5432)
    config.set("other", "host", "h")
    config.set("other", "port", 1)
    config.persist()
    assert config.validate() == []


def test_warn_writes_and_validate_reports(sales, configurations):
    config = sales
    config.set_schema(SCHEMA, mode="warn")
    config.set("loose", "port", 1)
    config.persist()
    assert (configurations / "sales" / "loose.json").exists()
    violations = config.validate()
    assert [(v["namespace"], v["configuration"]) for v in violations] == [("sales", "loose")]
    with pytest.raises(InvalidValueException):
        config.set_schema({"type": "strin"})
    with pytest.raises(InvalidValueException):
        config.set_schema(None, mode="sometimes")
    config.set_schema(None, config="loose", mode="off")


def test_schemas_work_in_a_forked_child(sales, configurations):
    import os

    config = sales
    config.set("database", "host", "db")
    config.persist()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            config.set_schema(SCHEMA)
            config.set("database", "port", 70000)
            try:
                config.persist()
            except SchemaViolationException as error:
                code = 0 if error.violations[0]["pointer"] == "/port" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert config.get_schema()["mode"] == "enforce", "the child's schema is in the store"
