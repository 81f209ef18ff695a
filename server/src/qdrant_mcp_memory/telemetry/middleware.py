"""The MCP message pipeline, observed from inside the SDK's own SERVER span.

The SDK's OpenTelemetryMiddleware (outermost) opens a span per message; this middleware
adds what the conventions recommend and the SDK leaves out (network, client, session),
records `mcp.server.operation.duration`, and writes one `tool call` log line per call.

Who called (OAuth) goes on the span only as `user.hash`, only with MCP_CALLER_HASH_KEY set: an
HMAC of issuer and subject, so traces of one caller can be told apart without naming anyone
(a plain hash of an e-mail address is reversed by hashing guesses). Never on metrics: one
series per user would be unbounded, and metrics outlive traces.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult
from opentelemetry import trace
from pydantic import ValidationError

from ..oauth.caller import Caller, caller_of
from .instruments import BoundedValues, Instruments

log = logging.getLogger("qdrant_mcp_memory.calls")


def caller_hash(key: bytes, caller: Caller) -> str:
    """`user.hash`: 128 bits of HMAC-SHA256 over the issuer and the subject (unique per issuer only)."""
    identity = f"{caller.issuer or ''}\x00{caller.subject or ''}".encode()
    return hmac.new(key, identity, hashlib.sha256).hexdigest()[:32]


class MessageTelemetry(ServerMiddleware[Any]):
    def __init__(self, instruments: Instruments, names: BoundedValues, caller_key: bytes | None = None) -> None:
        self.instruments = instruments
        self.names = names
        self.caller_key = caller_key

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        request = ctx.request
        transport = "tcp" if request is not None else "pipe"
        attributes: dict[str, Any] = {"network.transport": transport}
        if request is not None:
            attributes["network.protocol.name"] = "http"
            attributes["network.protocol.version"] = request.scope.get("http_version", "1.1")
            if request.client is not None:
                attributes["client.address"] = request.client.host
                attributes["client.port"] = request.client.port
            session_id = request.headers.get("mcp-session-id")
            if session_id:
                attributes["mcp.session.id"] = session_id
            caller = caller_of(request.scope) if self.caller_key is not None else None
            if caller is not None and self.caller_key is not None and caller.subject is not None:
                attributes["user.hash"] = caller_hash(self.caller_key, caller)
        trace.get_current_span().set_attributes(attributes)
        name = ctx.params.get("name") if ctx.method == "tools/call" and ctx.params else None
        tool = name if isinstance(name, str) else None
        metric_attributes: dict[str, Any] = {"mcp.method.name": self.names.method(ctx.method)}
        if tool is not None:
            metric_attributes["gen_ai.tool.name"] = self.names.tool(tool)
        start = time.perf_counter()
        error_type: str | None = None
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            error_type = str(exc.error.code)
            raise
        except ValidationError:
            error_type = str(INVALID_PARAMS)  # as the SDK's span records malformed params
            raise
        except Exception as exc:
            error_type = type(exc).__qualname__
            raise
        else:
            # The shapes the SDK's own span counts as a tool error: the typed result or its wire form.
            match result:
                case CallToolResult(is_error=True) | {"isError": True}:
                    error_type = "tool_error"
                case _:
                    pass
            return result
        finally:
            elapsed = time.perf_counter() - start
            if error_type:
                metric_attributes["error.type"] = error_type
            self.instruments.operation_duration.record(elapsed, metric_attributes)
            if tool is not None:
                log.info(
                    "tool call",
                    extra={
                        "tool": tool,
                        "duration_ms": round(elapsed * 1000, 2),
                        "outcome": error_type or "ok",
                        "transport": transport,
                    },
                )
