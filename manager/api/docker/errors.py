"""Errors that leave the manager as Docker-style answers: `{"message": ...}` + status.

Handlers raise DockerError with the status the Engine itself would use, so that the
docker CLI and SDK react to a cluster error exactly as to an engine error (for example,
a 404 "No such image" on create makes the CLI pull and retry).
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from flock.common import json_codec
from flock.manager.api.docker import json_body


class DockerError(Exception):
    """An error answer: HTTP `status` with `{"message": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_answer(value: object, status: int = 200,
                headers: dict[str, str] | None = None) -> web.Response:
    """JSON with `Content-Type: application/json` exactly: the docker CLI reads an error
    message out of the body only for that value (aiohttp's json_response adds a charset)."""
    return web.Response(body=answer_bytes(value), status=status,
                        content_type="application/json", headers=headers)


def answer_bytes(value: object) -> bytes:
    """The body of a JSON answer: compact and UTF-8 as the Engine writes its own (Go's
    encoding/json), one line; orjson, since every answer is encoded on the loop."""
    return json_codec.dumps(value) + b"\n"


def error_response(status: int, message: str) -> web.Response:
    return json_answer({"message": message}, status=status)


def bad_parameter(message: str) -> DockerError:
    return DockerError(400, message)


def no_such_container(ref: str) -> DockerError:
    return DockerError(404, f"No such container: {ref}")


def json_error(raw: bytes, exc: json.JSONDecodeError) -> DockerError:
    """A 400 in the words the Engine (Go's encoding/json) uses for a malformed body."""
    text = raw.decode("utf-8", errors="replace")
    if exc.pos >= len(text.rstrip()):
        return bad_parameter("unexpected end of JSON input")
    char = text[exc.pos]
    where = "looking for beginning of value"
    if re.match(r"Expecting property name", exc.msg):
        where = "looking for beginning of object key string"
    elif exc.msg.startswith("Expecting ',' delimiter"):
        where = "after object key:value pair"
    elif exc.msg.startswith("Expecting ':' delimiter"):
        where = "after object key"
    elif exc.msg.startswith("Extra data"):
        where = "after top-level value"
    return bad_parameter(f"invalid character {char!r} {where}")


def parse_json_body(raw: bytes, what: str = "request body",
                    infinite: list[json_body.Number] | None = None) -> object:
    """The parsed JSON of a request body; an empty body is None; bad JSON is a 400, and
    so is what Go's decoder refuses beyond it (nesting too deep, NaN: json_body.py)."""
    if not raw.strip():
        return None
    try:
        return json_body.loads(raw, infinite)
    except json_body.BodyError as exc:
        raise bad_parameter(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise json_error(raw, exc) from None
    except UnicodeDecodeError:
        raise bad_parameter(f"invalid {what}: not UTF-8 text") from None
