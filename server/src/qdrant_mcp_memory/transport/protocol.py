"""uvicorn's HTTP protocol with a deadline for request headers.

uvicorn closes idle keep-alive connections, but a connection that sends part of its
headers and then nothing stays open for ever, before auth can refuse it (slowloris):
enough of them exhaust the connection limit. Here every request's headers must arrive
within `header_timeout` seconds of its first byte (or of the connection opening):
MCP_HEADER_TIMEOUT, set on the class `header_deadline_protocol` makes per server.
"""

from __future__ import annotations

import asyncio
from typing import cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout: float  # seconds; set by header_deadline_protocol
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio hands a stream server's protocol an asyncio.Transport; uvicorn annotates that narrower type.
        super().connection_made(cast(asyncio.Transport, transport))
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # the next request on a keep-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn (which makes one per connection) with this deadline."""

    class Configured(HeaderDeadlineProtocol):
        header_timeout = seconds

    return Configured
