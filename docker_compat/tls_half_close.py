"""TLS where a client's close_notify is a half-close, as it is for dockerd.

The docker CLI ends its input on a hijacked connection (`docker run`, attach, exec) with
CloseWrite, which on TLS sends close_notify, and keeps reading the container's output.
asyncio's TLS layer takes close_notify as the end of the whole connection: it ignores
a protocol's wish to stay open (eof_received() returning True) and shuts down, so the
output after the client's input ended was lost. This protocol is asyncio's own, except
that it honours that wish: the connection stays writable until the application closes
it (or the peer closes the TCP connection).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto

from aiohttp import web


class HalfCloseSSLProtocol(sslproto.SSLProtocol):
    _keep_open = False

    def _call_eof_received(self) -> None:
        if self._app_state != sslproto.AppProtocolState.STATE_CON_MADE:
            return
        self._app_state = sslproto.AppProtocolState.STATE_EOF
        try:
            self._keep_open = bool(self._app_protocol.eof_received())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - as asyncio's own layer does
            self._fatal_error(exc, "Error calling eof_received()")

    def _start_shutdown(self) -> None:
        app_closed = self._app_transport is not None and self._app_transport._closed
        if self._keep_open and not app_closed:
            return  # the peer is done sending; we are not done answering
        super()._start_shutdown()


class HalfCloseTLSSite(web.TCPSite):
    """aiohttp's TCPSite with HalfCloseSSLProtocol as the TLS layer."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext, reuse_address: bool = True) -> None:
        super().__init__(runner, host, port, reuse_address=reuse_address,
                         ssl_context=ssl_context)

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        context = self._ssl_context

        def protocol() -> HalfCloseSSLProtocol:
            return HalfCloseSSLProtocol(loop, server(), context, None, server_side=True)

        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address)
