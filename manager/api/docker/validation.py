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
from typing import TYPE_CHECKING

from flock.manager.api.docker import engine_api
from flock.manager.api.docker.errors import bad_parameter, parse_json_body
from flock.manager.api.docker.json_body import Number

if TYPE_CHECKING:
    from flock.manager.api.docker.call import Call

_KINDS = ((bool, "bool"), (str, "string"), (dict, "object"), (list, "array"),
          (int, "number"), (float, "number"))
_LITERAL = 80  # longest number quoted in a message
_FOLDED: dict[int, dict[str, str]] = {}


async def read_checked_body(call: Call) -> None:
    """For a route that takes a JSON body: read it whole (kept in `call.body`, which the
    proxy then sends instead of the spent stream) and check it; its parse is kept for
    the handler (`call.json()`)."""
    method = call.request.method
    if engine_api.body_route(method, call.template) is not None:
        call.body = await call.request.read()
        call.parsed = (check_body(method, call.template, call.body),)


def check_body(method: str, template: str, raw: bytes) -> object:
    """Raise a 400 DockerError, in the Engine's words, for a body of the route
    `template` that the Engine would refuse; nothing for routes without a JSON body.
    Returns the body's JSON (None when empty or not a JSON route)."""
    route = engine_api.body_route(method, template)
    if route is None:
        return None
    if not raw.strip():
        if route["empty_refused"]:
            raise bad_parameter("got EOF while reading request body")
        return None
    infinite: list[Number] = []
    value = parse_json_body(raw, infinite=infinite)
    problem = check_value(route["body"], value)
    if problem is not None:
        raise bad_parameter(problem)
    if infinite:  # in a field the Engine ignores; it cannot be passed on as sent
        raise bad_parameter(f"json: number {_literal(infinite[0])} is out of range: flock "
                            "passes on numbers that fit a float64 only")
    return value


class _Misfit(Exception):
    """The first part of a body that does not fit its shape. Raised where it is found;
    each struct on the way out adds its field's name, so that a body that fits (the
    usual case) builds no path at all."""

    def __init__(self, what: str, node: dict, struct: str) -> None:
        super().__init__(what)
        self.what, self.node, self.struct = what, node, struct
        self.path: list[str] = []  # innermost field first

    def message(self) -> str:
        return _refused(self.what, self.node, tuple(reversed(self.path)), self.struct)


def check_value(node: dict, value: object) -> str | None:
    """The Engine's message for the first part of `value` that does not fit `node`."""
    try:
        _check(node, value, node.get("struct", ""))
    except _Misfit as misfit:
        return misfit.message()
    return None


def _check(node: dict, value: object, struct: str) -> None:
    if value is None:
        return
    if "ref" in node:
        node = engine_api.definition(node["ref"])
    kind = node["kind"]
    if kind == "struct":
        if not isinstance(value, dict):
            raise _Misfit(_kind(value), node, struct)
        _check_fields(node, value)
    elif kind == "map":
        if not isinstance(value, dict):
            raise _Misfit(_kind(value), node, struct)
        values = node["values"]
        for item in value.values():
            _check(values, item, struct)
    elif kind == "array":
        if not isinstance(value, list):
            raise _Misfit(_kind(value), node, struct)
        items = node["items"]
        for item in value:
            _check(items, item, struct)
    elif kind == "strslice":  # a string, or an array of strings
        if not (isinstance(value, str) or (isinstance(value, list) and all(
                item is None or isinstance(item, str) for item in value))):
            raise _Misfit(_kind(value), node, struct)
    else:
        _check_scalar(node, value, struct)


def _check_scalar(node: dict, value: object, struct: str) -> None:
    """Exact type tests first: JSON gives exact types, and bool is an int to isinstance
    (a body's scalars are most of its values, so this is the hot path)."""
    kind = node["kind"]
    if kind == "string":
        if type(value) is str:
            return
    elif kind == "boolean":
        if type(value) is bool:
            return
    elif kind == "integer":
        if type(value) is int and node["min"] <= value <= node["max"]:
            return
        if type(value) is int or isinstance(value, float):
            raise _Misfit(f"number {_literal(value)}", node, struct)
    elif kind == "number":
        if type(value) is int or isinstance(value, float):
            if _finite(value):
                return
            raise _Misfit(f"number {_literal(value)}", node, struct)
    elif kind == "any":
        return
    raise _Misfit(_kind(value), node, struct)


def _check_fields(node: dict, value: dict) -> None:
    fields, inner = node["fields"], node["struct"]
    for key, item in value.items():
        name = key if key in fields else _folded(node).get(key.lower())
        if name is not None:  # unknown fields are ignored, as Go does
            try:
                _check(fields[name], item, inner)
            except _Misfit as misfit:
                misfit.path.append(name)
                raise


def _folded(node: dict) -> dict[str, str]:
    """Lower-case field name -> field name, made once per struct (schema nodes live as
    long as the process)."""
    folded = _FOLDED.get(id(node))
    if folded is None:
        folded = _FOLDED[id(node)] = {name.lower(): name for name in node["fields"]}
    return folded


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
