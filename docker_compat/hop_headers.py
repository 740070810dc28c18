"""The headers that belong to one HTTP hop, not to the Docker request or answer.

A Docker API call crosses several hops (client -> manager -> primary manager -> agent ->
engine), and each hop frames its own message: forwarding one hop's `Content-Length` or
`Transfer-Encoding` into the next would describe a body the next hop re-chunks, and a
`Connection: Upgrade` would ask the wrong peer to switch protocols. Every forwarder drops
these from what it passes on and lets its HTTP library write its own."""

from __future__ import annotations

# How one connection's message is framed and kept: never copied to the next hop, in
# either direction (RFC 9110 section 7.6.1, plus Content-Length, which the next hop's
# framing recomputes).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})

# What a forwarder of a request sets itself or that makes no sense past one hop: the
# target host, the protocol switch (a hijack is set up hop by hop), transfer codings the
# client accepts, trailers announced and the 100-continue handshake.
HOP_REQUEST = HOP_BY_HOP | {"host", "upgrade", "te", "trailer", "expect", "proxy-connection"}
