"""The application key under which handlers find the runtime's shared parts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

CORE: web.AppKey[Any] = web.AppKey("flock_exec_core", object)
