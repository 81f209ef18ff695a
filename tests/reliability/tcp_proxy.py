"""A loopback TCP proxy the tests control: forward, cut, hang, restore.

It stands between the server and Qdrant (`QDRANT_URL=http://127.0.0.1:<proxy port>`), on
one fixed port for its whole life, so the server never learns of it:

- `cut()`: the link is gone. The listening socket closes (new connections are refused at
  once) and every open connection is reset (RST) on both sides.
- `hang()`: Qdrant is there but never answers. Connections are accepted and whatever they
  send is swallowed; open connections are reset first, so the next request meets the hang.
- `restore()`: forwarding again, on the same port; hung connections are reset.

It runs its own event loop in a daemon thread, so tests (sync or async) call it directly.
Loopback only: it listens on 127.0.0.1 and forwards to the target it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["forward", "cut", "hang"]
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.mode: Mode = "cut"
        self.accepted = 0  # connections accepted over the proxy's life
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    # -- control, from any thread --------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def cut(self) -> None:
        self._run(self._set_mode("cut"))

    def hang(self) -> None:
        self._run(self._set_mode("hang"))

    def restore(self) -> None:
        self._run(self._set_mode("forward"))

    def close(self) -> None:
        if self._thread.is_alive():
            self.cut()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # -- in the proxy's loop -----------------------------------------------------------------

    async def _set_mode(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        # Every connection opened under the previous mode is reset: a cut drops the link, a hang
        # (or a restore after one) must not leave a request half-served by the other mode.
        if previous != mode or mode == "cut":
            for writer in list(self._open):
                _reset(writer)
            self._open.clear()
        if mode == "cut":
            if self._server is not None:
                self._server.close()  # no wait_closed(): on 3.12 it would wait for the connections
                self._server = None
        elif self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._open.add(writer)
        try:
            if self.mode == "hang":
                while await reader.read(65536):
                    pass  # swallowed: never forwarded, never answered
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _reset(writer)  # nothing behind the proxy: the client sees a reset, at once
                return
            self._open.add(upstream_writer)
            try:
                await asyncio.gather(
                    self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
                )
            finally:
                self._open.discard(upstream_writer)
                upstream_writer.close()
        finally:
            self._open.discard(writer)
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if not writer.is_closing() and writer.can_write_eof():
                    writer.write_eof()  # half-close: pass the peer's FIN on
