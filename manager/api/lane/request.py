"""A hot-lane request: what the handlers, middlewares and answer hooks read of an
aiohttp request, made from a parsed head and a body already read whole.

The names and meanings are aiohttp's (web_request.BaseRequest), so that the same
handlers serve both paths: `path` decoded, `rel_url` built the way aiohttp's parser
builds it (yarl, encoded=True), `query` from it, `body_exists` only for a non-empty
body. The URL is built on first use: a start never asks for its query.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

from flock.manager.api.lane.head import Head


class _ReadContent:
    """`request.content` of a body the lane read whole."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def at_eof(self) -> bool:
        return True

    async def iter_any(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    async def read(self) -> bytes:
        return self._body


class LaneRequest:
    """One request of the hot lane, in aiohttp's request words."""

    __slots__ = ("method", "headers", "transport", "_head", "_body", "_url", "_values",
                 "content")

    def __init__(self, head: Head, body: bytes, transport: asyncio.Transport) -> None:
        self.method = head.method
        self.headers = CIMultiDictProxy(CIMultiDict(head.headers))
        self.transport = transport
        self.content = _ReadContent(body)
        self._head = head
        self._body = body
        self._url: URL | None = None
        self._values: dict[Any, Any] = {}

    @property
    def rel_url(self) -> URL:
        if self._url is None:
            self._url = URL.build(path=self._head.path, query_string=self._head.query,
                                  encoded=True)
        return self._url

    @property
    def path(self) -> str:
        return self.rel_url.path

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.rel_url.query

    @property
    def query_string(self) -> str:
        return self.rel_url.query_string

    @property
    def body_exists(self) -> bool:
        return bool(self._body)

    @property
    def can_read_body(self) -> bool:
        return False  # read whole before the handler runs

    @property
    def keep_alive(self) -> bool:
        return True

    async def read(self) -> bytes:
        return self._body

    def __getitem__(self, key: Any) -> Any:
        return self._values[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._values[key] = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self._values.get(key, default)
