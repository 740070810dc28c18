"""JSON answers with exactly `Content-Type: application/json`: the docker client only
decodes an error body when the header is that string, charset-free."""

from __future__ import annotations

import json

from aiohttp import web


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})
