"""Checks on each POST before the SDK sees it: a body deadline and a well-formed JSON-RPC envelope.

- The body must arrive within BODY_TIMEOUT_S and fit MAX_BODY_BYTES (the SDK's own cap):
  a client that sends headers and then trickles its body would otherwise hold a
  connection and a task for ever.
- A request's `id` must be a string or an integer (JSON-RPC 2.0, MCP). The 2026-07-28 path
  of the SDK answers 400 for anything else; the 2025 session path accepts the POST (202)
  and never answers, leaving the client waiting. Here both answer 400 / -32600.
- Parameters holding lone UTF-16 surrogates or nested absurdly deep are refused naming the
  parameter (400 / -32602), the same in both eras.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..validation import TooDeep, surrogate_paths

BODY_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 4 * 1024 * 1024
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
PARSE_ERROR = -32700


class RequestGuard:
    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        body = b""
        with anyio.move_on_after(BODY_TIMEOUT_S) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > MAX_BODY_BYTES:
                    await _reject(send, 413, INVALID_REQUEST, f"request body exceeds {MAX_BODY_BYTES} bytes")
                    return
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            await _reject(send, 408, INVALID_REQUEST, f"request body not received within {BODY_TIMEOUT_S:.0f} s")
            return
        problem = _envelope_problem(body)
        if problem is not None:
            code, text = problem
            await _reject(send, 400, code, text, _request_id(body))
            return
        await self.app(scope, replay(body, receive), send)


def _envelope_problem(body: bytes) -> tuple[int, str] | None:
    """What is wrong with the message that the SDK would not answer clearly itself: (code, message)."""
    try:
        message = json.loads(body)
    except RecursionError:
        return PARSE_ERROR, "Parse error: the JSON is nested too deeply"
    except ValueError:
        return None  # the SDK answers parse errors itself
    if not isinstance(message, dict):
        return None
    if "id" in message and "method" in message:
        request_id = message["id"]
        if isinstance(request_id, bool) or not isinstance(request_id, str | int):
            return INVALID_REQUEST, "Invalid Request: a request id must be a string or an integer"
    # The 2025 session path parses with a stricter parser than the 2026 one: lone surrogates and
    # deep nesting come back as a "parse error" naming no parameter. Name it here, for both eras.
    try:
        where = next(surrogate_paths(message.get("params")), None)
    except TooDeep as exc:
        return INVALID_PARAMS, f"Invalid params: parameter {exc}"
    if where is not None:
        return INVALID_PARAMS, f"Invalid params: parameter {where} contains a lone UTF-16 surrogate (e.g. \\ud800)"
    return None


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that hands the already-read body over once, then waits on the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _request_id(body: bytes) -> str | int | None:
    """The id to answer with: the request's own when it is a valid one."""
    try:
        request_id = json.loads(body).get("id")
    except (ValueError, RecursionError, AttributeError):
        return None
    return request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None


async def _reject(send: Send, status: int, code: int, message: str, request_id: str | int | None = None) -> None:
    payload: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
