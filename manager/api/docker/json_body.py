"""Reading a client's JSON body the way the Engine's Go decoder sees it, safely.

Python's json module differs from Go's encoding/json where it matters for a server:
it recurses once per nesting level (a body nested 100,000 deep raised RecursionError
from deep inside the parser), it accepts NaN and Infinity, it turns 1e400 into inf
and refuses integers of more than 4,300 digits with a ValueError. Go refuses the
first two with a syntax error and reports a number that does not fit its field with
the number's own text, so numbers other than small integers keep their literal here.
"""

from __future__ import annotations

import json
import math
import re

# Go's scanner allows 10,000 levels (encoding/json maxNestingDepth). In Python the
# parser, the encoder and code that walks a body (copy.deepcopy of a create body: two
# frames a level) recurse under a limit of 1,000 frames shared with the server's own
# stack, so the manager stops far short of that. The Engine's bodies nest 6 deep.
MAX_DEPTH = 100
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
_INT_DIGITS = 1000  # longer integer literals are kept as a Number (their value inf)


class BodyError(ValueError):
    """A body the Engine's decoder would refuse; the text is the Engine's."""


class Number(float):
    """A JSON number that is not a small integer, with the text the client sent: the
    Engine's messages quote it (`cannot unmarshal number 1e400 into ...`)."""

    literal: str

    def __new__(cls, literal: str) -> Number:
        number = super().__new__(cls, literal)
        number.literal = literal
        return number


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> str | None:
    """The bracket that first nests deeper than `limit`, or None. Iterative, and
    brackets inside strings do not count."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return None  # cannot be deeper than it has brackets
    depth = 0
    for token in _TOKENS.finditer(raw):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return char.decode()
        elif char in (b"]", b"}"):
            depth -= 1
    return None


def _integer(literal: str) -> int | Number:
    return int(literal) if len(literal) <= _INT_DIGITS else Number(literal)


def _constant(name: str) -> object:
    """NaN, Infinity and -Infinity are not JSON: refused as Go's scanner words it."""
    if name.startswith("-"):
        raise BodyError(f"invalid character {name[1]!r} in numeric literal")
    raise BodyError(f"invalid character {name[0]!r} looking for beginning of value")


def loads(raw: bytes, infinite: list[Number] | None = None) -> object:
    """The value of `raw`; BodyError for what Go refuses beyond JSON syntax (too deep,
    NaN), json.JSONDecodeError or UnicodeDecodeError for malformed text. Numbers too
    large for a float64 are appended to `infinite` when given: noticed while parsing,
    they need no second pass over the body."""
    bracket = too_deep(raw)
    if bracket is not None:
        raise BodyError(f"invalid character {bracket!r} exceeded max depth "
                        f"(flock reads JSON nested at most {MAX_DEPTH} deep)")
    if infinite is None:
        return json.loads(raw, parse_float=Number, parse_int=_integer,
                          parse_constant=_constant)

    def noted(number: int | Number) -> int | Number:
        if isinstance(number, Number) and math.isinf(number):
            infinite.append(number)
        return number

    return json.loads(raw, parse_float=lambda text: noted(Number(text)),
                      parse_int=lambda text: noted(_integer(text)), parse_constant=_constant)
