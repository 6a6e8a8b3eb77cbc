"""JSON text to and from Python values, with every number exact.

Python's ``json`` keeps integers of any size as ``int`` already. It turns a number that no
float holds exactly (``1e400``, ``0.1000000000000000000000000001``) into the nearest float, or
``inf``, and ``-0`` into ``0``; written back, the configuration would silently change. Those
numbers are read as ``decimal.Decimal`` instead (every other float stays a ``float``), and a
``Decimal`` is written as the number it is.
"""

import decimal
import json
import secrets

# A marker no user string can hold: a random token per process.
_MARK = "\x00confo-number-%s:" % secrets.token_hex(8)
_MARK_JSON = json.dumps(_MARK)[1:-1]


def _float(text):
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        return decimal.Decimal(text)
    if decimal.Decimal(repr(number)) != decimal.Decimal(text):
        return decimal.Decimal(text)
    return number


def _int(text):
    return decimal.Decimal(text) if text == "-0" else int(text)


def loads(text):
    """Parses JSON; numbers that a float cannot hold exactly become ``Decimal``."""
    return json.loads(text, parse_float=_float, parse_int=_int)


def _default(value):
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return _MARK + str(value)
    if isinstance(value, decimal.Decimal):
        raise ValueError("Decimal %s is not a JSON number" % value)
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def dumps(value):
    """Writes JSON; ``Decimal`` numbers are written exactly. NaN and infinities are refused (JSON
    has none)."""
    text = json.dumps(value, default=_default, allow_nan=False)
    if _MARK_JSON not in text:
        return text
    out = []
    rest = text
    quoted = '"' + _MARK_JSON
    while True:
        start = rest.find(quoted)
        if start < 0:
            out.append(rest)
            return "".join(out)
        end = rest.index('"', start + len(quoted))
        out.append(rest[:start])
        out.append(rest[start + len(quoted) : end])
        rest = rest[end + 1 :]
