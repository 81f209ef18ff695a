"""Stdio: `initialize` is answered before the MCP SDK is imported.

Desktop clients spawn a stdio server per conversation and wait for `initialize` before
anything else, while importing the SDK (about a thousand pydantic models) and building the
server takes most of a second of CPU. So the client's first line is read first, straight
from fd 0 up to the first newline (the protocol's delimiter) and one byte at a time, so that
nothing after it is consumed. An `initialize` for a revision of the handshake era that the
SDK is sure to accept (handshake.py) is answered at once: its answer depends only on that
revision and on what the server says about itself (identity.py). Then the SDK loads, and its
session receives what was read as the first messages it reads, split and parsed as its own
reader would have, so it negotiates exactly as if it had read them itself; its own answer,
which the client already has, is compared with the one sent (a difference is logged as the
bug it is) and not written. Anything else (a 2026-07-28 request, a batch, a notification, a
malformed line) is left to the SDK to answer.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .handshake import early_answer

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from mcp.shared._stream_protocols import ReadStream, WriteStream
    from mcp.shared.message import SessionMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstLine:
    """The client's first line, and the answer already sent for it (None: the SDK answers it)."""

    line: bytes
    answer: dict[str, Any] | None


def read_first_line(fd: int = 0) -> bytes | None:
    """The first line on `fd`, newline included; None at end of input. A byte at a time: a
    buffered read would take bytes of the next messages, which the SDK must read itself."""
    line = bytearray()
    while not line.endswith(b"\n"):
        try:
            byte = os.read(fd, 1)
        except OSError:
            byte = b""
        if not byte:
            return bytes(line) or None
        line += byte
    return bytes(line)


def answer_first_line(stdin: int = 0, stdout: int = 1) -> FirstLine | None:
    """Read the client's first line and answer it now if it is an `initialize` (see above)."""
    line = read_first_line(stdin)
    if line is None:
        return None
    answer = early_answer(line)
    if answer is not None:
        _write_all(stdout, json.dumps(answer, separators=(",", ":")).encode() + b"\n")
        log.info("initialize answered", extra={"protocol_version": answer["result"]["protocolVersion"]})
    return FirstLine(line, answer)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def serve_stdio(mcp_server: MCPServer[Any], first: FirstLine | None) -> None:
    """Serve the connection on stdin and stdout, starting with the line read before the SDK loaded.

    As `MCPServer.run_stdio_async` does, but the session reads `first` before anything else."""
    from mcp.server.stdio import stdio_server

    # MCPServer.run_stdio_async runs its low-level server the same way; it takes no first message.
    server = mcp_server._lowlevel_server
    async with stdio_server() as (stdin, stdout):
        read_stream: ReadStream[SessionMessage | Exception] = stdin
        write_stream: WriteStream[SessionMessage] = stdout
        if first is not None:
            read_stream = _Replaying(first.line, stdin)
            if first.answer is not None:
                write_stream = _Deduplicating(first.answer, stdout)
        await server.run(read_stream, write_stream, server.create_initialization_options())


class _Replaying:
    """A read stream that yields the bytes read before the SDK loaded as the SDK's stdio reader
    would have (its text wrapper: UTF-8 with replacement, universal newlines), then the stream."""

    def __init__(self, line: bytes, inner: ReadStream[SessionMessage | Exception]) -> None:
        from mcp.shared.message import SessionMessage
        from mcp_types import jsonrpc_message_adapter

        self.inner = inner
        self.replayed: list[SessionMessage | Exception] = []
        for text in io.TextIOWrapper(io.BytesIO(line), encoding="utf-8", errors="replace"):
            try:
                self.replayed.append(SessionMessage(jsonrpc_message_adapter.validate_json(text, by_name=False)))
            except Exception as exc:  # the SDK's reader hands invalid lines to the session as they are
                self.replayed.append(exc)

    @property
    def last_context(self) -> Any:
        return getattr(self.inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        if self.replayed:
            return self.replayed.pop(0)
        return await self.inner.receive()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __aiter__(self) -> _Replaying:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        from anyio import EndOfStream

        try:
            return await self.receive()
        except EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _Replaying:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _Deduplicating:
    """A write stream that holds back the SDK's answer to the `initialize` answered early."""

    def __init__(self, sent: dict[str, Any], inner: WriteStream[SessionMessage]) -> None:
        self.sent = sent
        self.inner = inner
        self.pending = True

    async def send(self, item: SessionMessage, /) -> None:
        if self.pending and getattr(item.message, "id", None) == self.sent["id"]:
            self.pending = False
            own = json.loads(item.message.model_dump_json(by_alias=True, exclude_unset=True))
            if own != self.sent:
                log.error("the SDK answered initialize differently from the answer sent early", extra={"sdk": own})
            return
        await self.inner.send(item)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> _Deduplicating:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
