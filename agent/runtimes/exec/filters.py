"""The `filters` query parameter: JSON, either {"k": {"v": true}} or the older
{"k": ["v"]}; unknown keys are a 400 as in the Engine."""

from __future__ import annotations

import json
from collections.abc import Callable

from flock.agent.runtimes.exec.errors import bad_request


def parse_filters(text: str, allowed: set[str]) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"invalid filter: {exc}") from None
    if not isinstance(raw, dict):
        raise bad_request("invalid filter: expected a JSON object")
    result: dict[str, list[str]] = {}
    for key, values in raw.items():
        if key not in allowed:
            raise bad_request(f"Invalid filter '{key}'")
        if isinstance(values, dict):
            result[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list):
            result[key] = [str(v) for v in values]
        else:
            result[key] = [str(values)]
    return result


def label_ok(labels: dict, wanted: list[str]) -> bool:
    """`label=k` (present) and `label=k=v` (equal) filters, all of them."""
    return all(labels.get(w.partition("=")[0]) == w.partition("=")[2] if "=" in w
               else w in labels for w in wanted)


# What a container of a runtime without health checks, tasks or isolation modes answers.
STATIC_CHECKS: dict[str, Callable[[str], bool]] = {
    "health": lambda v: v == "none",
    "is-task": lambda v: v.lower() in ("false", "0"),
    "isolation": lambda v: v == "default",
}


def container_matches(filters: dict[str, list[str]], checks: dict[str, Callable[[str], bool]],
                      labels: dict) -> bool:
    """The Engine's `containers/json` filter semantics: the values of one key are
    alternatives, different keys must all hold. `checks` answers per key and value;
    before/since are applied by the caller; keys the runtime does not model (volume,
    network, publish, expose) match nothing."""
    checks = {**STATIC_CHECKS, **checks}
    for key, values in filters.items():
        if key == "label":
            if not label_ok(labels, values):
                return False
        elif key in ("before", "since"):
            continue
        elif key in checks:
            if not any(checks[key](v) for v in values):
                return False
        elif values:
            return False
    return True
