"""What the front knows of the Engine API without asking a node: the endpoints of the
reference and the shapes of the JSON bodies the manager takes.

Both come from engine_api.json, generated from the Engine API reference by
engine_api_gen.py and shipped in the wheel next to this module.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re

SCHEMA_FILE = pathlib.Path(__file__).resolve().parent / "engine_api.json"
_PARAM = re.compile(r"\{(\w+)\*?\}")


@functools.cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


@functools.cache
def _endpoints() -> dict[str, list[re.Pattern[str]]]:
    """Method -> the reference's paths as patterns; a parameter may hold `/`, as
    `node/name` does here, so that only paths no Engine has are told apart."""
    found: dict[str, list[re.Pattern[str]]] = {}
    for entry in schema()["endpoints"]:
        method, path = entry.split(" ", 1)
        parts = _PARAM.split(path)  # text, parameter name, text, ...
        pattern = "".join(re.escape(part) if i % 2 == 0 else ".+"
                          for i, part in enumerate(parts))
        found.setdefault(method, []).append(re.compile(f"^{pattern}/?$"))
    return found


def knows(method: str, path: str) -> bool:
    """Whether an Engine serves `method path` (path without the version prefix)."""
    return any(p.match(path) for p in _endpoints().get(method, ()))


def body_route(method: str, template: str) -> dict | None:
    """The body checks of the route a request matched (`/containers/{id*}/update`
    reads as the reference's `/containers/{id}/update`), or None without a JSON body."""
    return schema()["routes"].get(_route_key(method, template))


@functools.lru_cache(maxsize=512)
def _route_key(method: str, template: str) -> str:
    """Asked twice per request with a body: the templates are few, the sub is not free."""
    return method + " " + _PARAM.sub(r"{\1}", template)


def definition(name: str) -> dict:
    return schema()["definitions"][name]
