"""The userspace proxy of published ports (what docker-proxy does for dockerd): a TCP or
UDP listener on the host that relays to the container's address. It runs in the runtime's
event loop; the runtime opens them again for running containers when it restarts.

A proxy rather than DNAT rules because it also answers on 127.0.0.1 and needs no
route_localnet, and because the bind itself tells whether the host port is free."""

from __future__ import annotations

import asyncio
import contextlib
import socket

UDP_IDLE = 60.0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task] = set()

    async def open(self, host_ip: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host_ip, port,
                                                 family=socket.AF_INET, reuse_address=True)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            for w in (writer, up_writer):
                w.close()
        finally:
            self.tasks.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _Upstream(asyncio.DatagramProtocol):
    """One client's flow to the container: replies go back to that client."""

    def __init__(self, front: asyncio.DatagramTransport, client: tuple) -> None:
        self.front = front
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = asyncio.get_running_loop().time()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.last = asyncio.get_running_loop().time()
        self.front.sendto(data, self.client)


class UdpProxy(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple, _Upstream] = {}
        self.pending: dict[tuple, list[bytes]] = {}
        self.sweeper: asyncio.Task | None = None

    async def open(self, host_ip: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host_ip, port))
        except OSError:
            sock.close()
            raise
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.sweeper = loop.create_task(self._sweep())
        return sock.getsockname()[1]

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        flow = self.flows.get(addr)
        if flow is not None and flow.transport is not None:
            flow.last = asyncio.get_running_loop().time()
            flow.transport.sendto(data)
            return
        if addr in self.pending:
            self.pending[addr].append(data)
            return
        self.pending[addr] = [data]
        asyncio.get_running_loop().create_task(self._connect(addr))

    async def _connect(self, addr: tuple) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, flow = await loop.create_datagram_endpoint(
                lambda: _Upstream(self.transport, addr), remote_addr=self.target)
        except OSError:
            self.pending.pop(addr, None)
            return
        self.flows[addr] = flow
        for data in self.pending.pop(addr, []):
            flow.transport.sendto(data)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE / 4)
            now = asyncio.get_running_loop().time()
            for addr, flow in list(self.flows.items()):
                if now - flow.last > UDP_IDLE:
                    flow.transport.close()
                    del self.flows[addr]

    async def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        for flow in self.flows.values():
            if flow.transport is not None:
                flow.transport.close()
        self.flows.clear()
        if self.transport is not None:
            self.transport.close()


def make(proto: str, target: tuple[str, int]) -> TcpProxy | UdpProxy:
    return UdpProxy(target) if proto == "udp" else TcpProxy(target)
