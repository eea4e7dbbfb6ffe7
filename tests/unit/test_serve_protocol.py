"""The storefront API's HTTP protocol turns Nagle's algorithm off on every connection, also on a listening
socket made the way uvicorn makes it for several workers (``socket.socket(family)``, proto 0), where
asyncio leaves it on and each response then waited ~40 ms for the client's delayed ACK."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.serve.protocol import NoDelayH11Protocol


async def ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def server_nodelay(protocol) -> int:
    """TCP_NODELAY of the server's side of one keep-alive connection, served with ``protocol``."""
    sock = socket.socket(socket.AF_INET)  # as uvicorn's Config.bind_socket for workers > 1: proto 0
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(ok_app, http=protocol, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        client = http.client.HTTPConnection(*sock.getsockname(), timeout=10)
        client.request("GET", "/")
        assert client.getresponse().read() == b"ok"
        (connection,) = server.server_state.connections
        value = connection.transport.get_extra_info("socket").getsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY
        )
        client.close()
        return value
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_the_api_protocol_sets_tcp_nodelay():
    assert server_nodelay(NoDelayH11Protocol) != 0


def test_uvicorns_own_protocol_leaves_nagle_on_for_a_worker_socket():
    """Why the protocol exists: without it, such a socket's connections keep Nagle on."""
    assert server_nodelay(H11Protocol) == 0
