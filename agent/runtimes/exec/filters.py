"""The `filters` query parameter: JSON, either {"k": {"v": true}} or the older
{"k": ["v"]}; unknown keys are a 400 as in the Engine."""

from __future__ import annotations

import json

from agent.runtimes.exec.errors import bad_request


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
