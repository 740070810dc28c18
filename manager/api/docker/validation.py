"""Request bodies checked at the front, before anything is scheduled or sent to a node.

A body the Engine would refuse must be refused here with the Engine's words, not get
half-way (a volume made on every node) or end in a Python exception (a 500). The
checks are those of the Engine's Go decoder, from the shapes in engine_api.json:
each known field has the JSON type its Go field takes, integers are integer literals
that fit their Go type, other numbers are finite. As in Go, unknown fields are
ignored, `null` is accepted anywhere, field names match case-insensitively and the
first error in the document is the one reported. Checks the Engine makes after
decoding (enums, ranges, required fields) stay the Engine's own.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from manager.api.docker import engine_api
from manager.api.docker.errors import bad_parameter, parse_json_body
from manager.api.docker.json_body import Number

if TYPE_CHECKING:
    from manager.api.docker.app import Call

_KINDS = ((bool, "bool"), (str, "string"), (dict, "object"), (list, "array"),
          (int, "number"), (float, "number"))
_LITERAL = 80  # longest number quoted in a message
_FOLDED: dict[int, dict[str, str]] = {}
# What a number past a float64 must contain (an exponent of 3 digits, or 300 digits);
# strings may match too, which costs a walk, never a refusal.
_MAY_OVERFLOW = re.compile(rb"[eE][+]?0*[1-9][0-9]{2}|[0-9]{300}")


async def read_checked_body(call: Call) -> None:
    """For a route that takes a JSON body: read it whole (kept in `call.body`, which the
    proxy then sends instead of the spent stream) and check it."""
    method = call.request.method
    if engine_api.body_route(method, call.template) is not None:
        call.body = await call.request.read()
        check_body(method, call.template, call.body)


def check_body(method: str, template: str, raw: bytes) -> None:
    """Raise a 400 DockerError, in the Engine's words, for a body of the route
    `template` that the Engine would refuse; nothing for routes without a JSON body."""
    route = engine_api.body_route(method, template)
    if route is None:
        return
    if not raw.strip():
        if route["empty_refused"]:
            raise bad_parameter("got EOF while reading request body")
        return
    value = parse_json_body(raw)
    problem = check_value(route["body"], value)
    if problem is not None:
        raise bad_parameter(problem)
    huge = _first_infinite(value) if _MAY_OVERFLOW.search(raw) else None
    if huge is not None:  # in a field the Engine ignores; it cannot be passed on as sent
        raise bad_parameter(f"json: number {_literal(huge)} is out of range: flock passes "
                            "on numbers that fit a float64 only")


def check_value(node: dict, value: object) -> str | None:
    """The Engine's message for the first part of `value` that does not fit `node`."""
    return _check(node, value, (), node.get("struct", ""))


def _check(node: dict, value: object, path: tuple[str, ...], struct: str) -> str | None:
    if value is None:
        return None
    if "ref" in node:
        node = engine_api.definition(node["ref"])
    kind = node["kind"]
    if kind == "struct":
        if not isinstance(value, dict):
            return _refused(_kind(value), node, path, struct)
        return _check_fields(node, value, path)
    if kind == "map":
        if not isinstance(value, dict):
            return _refused(_kind(value), node, path, struct)
        return _first(_check(node["values"], item, path, struct) for item in value.values())
    if kind == "array":
        if not isinstance(value, list):
            return _refused(_kind(value), node, path, struct)
        return _first(_check(node["items"], item, path, struct) for item in value)
    if kind == "strslice":  # a string, or an array of strings
        if isinstance(value, str) or (isinstance(value, list) and all(
                item is None or isinstance(item, str) for item in value)):
            return None
        return _refused(_kind(value), node, path, struct)
    return _check_scalar(node, value, path, struct)


def _check_scalar(node: dict, value: object, path: tuple[str, ...], struct: str
                  ) -> str | None:
    kind = node["kind"]
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind in ("integer", "number") and _kind(value) == "number":
        if kind == "integer":
            ok = isinstance(value, int) and node["min"] <= value <= node["max"]
        else:
            ok = _finite(value)
        return None if ok else _refused(f"number {_literal(value)}", node, path, struct)
    else:
        ok = kind == "any"
    return None if ok else _refused(_kind(value), node, path, struct)


def _check_fields(node: dict, value: dict, path: tuple[str, ...]) -> str | None:
    fields = node["fields"]
    for key, item in value.items():
        name = key if key in fields else _folded(node).get(key.lower())
        if name is not None:  # unknown fields are ignored, as Go does
            problem = _check(fields[name], item, (*path, name), node["struct"])
            if problem is not None:
                return problem
    return None


def _folded(node: dict) -> dict[str, str]:
    """Lower-case field name -> field name, made once per struct (schema nodes live as
    long as the process)."""
    folded = _FOLDED.get(id(node))
    if folded is None:
        folded = _FOLDED[id(node)] = {name.lower(): name for name in node["fields"]}
    return folded


def _first_infinite(value: object) -> Number | None:
    """A number too large for a float64 anywhere in `value` (the manager re-encodes
    bodies, and JSON has no infinity). Iterative: the depth is capped, not small."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, Number) and not math.isfinite(item):
            return item
    return None


def _first(problems) -> str | None:
    return next((p for p in problems if p is not None), None)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _kind(value: object) -> str:
    return next(name for kind, name in _KINDS if isinstance(value, kind))


def _literal(value: int | float) -> str:
    text = value.literal if isinstance(value, Number) else str(value)
    return text if len(text) <= _LITERAL else text[:_LITERAL] + "..."


def _refused(what: str, node: dict, path: tuple[str, ...], struct: str) -> str:
    """Go's UnmarshalTypeError text: the innermost struct, then the field path."""
    go = node.get("go") or "interface {}"
    if not path:
        return f"json: cannot unmarshal {what} into Go value of type {go}"
    return (f"json: cannot unmarshal {what} into Go struct field {struct}."
            f"{'.'.join(path)} of type {go}")
