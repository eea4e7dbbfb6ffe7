"""uvicorn's HTTP/1.1 protocol (h11) with ``TCP_NODELAY`` on every connection.

asyncio turns Nagle's algorithm off only on sockets whose ``proto`` is ``IPPROTO_TCP``; the listening
socket uvicorn binds for several workers is made with ``socket.socket(family)`` (``proto`` 0), so its
connections kept Nagle on. h11 writes a response's head and body separately: the body then waited for the
client's delayed ACK of the head, about 40 ms on Linux, on every response (``/healthz`` included). With
one worker uvicorn's own ``create_server`` socket already had the option; setting it here covers both.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
