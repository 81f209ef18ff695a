"""The proxy the outage suite relies on does what it says: forward, cut (refuse and reset), hang, restore."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionResetError:
            pass  # what the proxy's cut does to this side


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def test_forward_cut_hang_restore(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        port = proxy.port
        assert roundtrip(port) == b"ping"
        held = socket.create_connection(("127.0.0.1", port), timeout=2)
        held.sendall(b"a")
        assert held.recv(16) == b"a"

        proxy.cut()
        with pytest.raises(ConnectionRefusedError):
            roundtrip(port)
        with pytest.raises(ConnectionResetError):  # the open connection was reset, not closed quietly (b"")
            held.recv(16)
        held.close()

        proxy.hang()
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as sock:
            sock.sendall(b"never answered")
            with pytest.raises(TimeoutError):
                sock.recv(16)

        proxy.restore()
        assert proxy.port == port and roundtrip(port, b"back") == b"back"
        assert proxy.accepted == 4
