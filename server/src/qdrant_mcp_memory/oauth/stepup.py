"""HTTP 403 with the step-up challenge for a call the token's scopes do not allow.

Every MCP message arrives as a POST to the one endpoint, so what a request needs is in its
JSON-RPC body, not in its URL: this layer reads it (after the transport guard has bounded and
checked it) when the caller lacks one of the scopes, and answers a call that needs the missing
one with `403` and `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` (RFC 6750
§3.1, the MCP specification's step-up). A client able to re-authorize asks for that scope and
retries; the body also carries the refusal as a JSON-RPC error, which other clients show.

A caller holding every scope is passed through unread. Bodies whose members repeat are refused
for the others: two parsers may pick different copies of a repeated `name`.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import INVALID_REQUEST
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..transport.guard import replay
from .caller import caller_of
from .gate import ProtectedResource
from .scopes import ScopePolicy, refusal


class RepeatedMember(ValueError):
    pass


class ScopeGuard:
    def __init__(self, app: ASGIApp, path: str, policy: ScopePolicy, resource: ProtectedResource) -> None:
        self.app = app
        self.path = path
        self.policy = policy
        self.resource = resource

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = caller_of(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if caller is None or scope["path"].rstrip("/") != self.path or self.policy.grants_everything(caller.scopes):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            messages = json.loads(body, object_pairs_hook=_unique_members)
        except RepeatedMember as exc:
            refused = JSONResponse(_error(None, f"Invalid Request: member {exc} appears twice"), 400)
            await refused(scope, receive, send)
            return
        except (ValueError, RecursionError):
            messages = None  # the SDK answers what is not JSON
        for message in messages if isinstance(messages, list) else [messages]:
            if not isinstance(message, dict):
                continue
            missing = self.policy.missing(message.get("method"), message.get("params"), caller.scopes)
            if missing is not None:
                scope_name, what = missing
                header = self.resource.challenge(
                    error="insufficient_scope", description=refusal(scope_name, what), scope=scope_name
                )
                request_id = message.get("id")
                valid_id = isinstance(request_id, str | int) and not isinstance(request_id, bool)
                payload = _error(request_id if valid_id else None, refusal(scope_name, what))
                await JSONResponse(payload, 403, {"WWW-Authenticate": header})(scope, receive, send)
                return
        await self.app(scope, replay(body, receive), send)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for key, value in pairs:
        if key in members:
            raise RepeatedMember(repr(key[:64]))
        members[key] = value
    return members


def _error(request_id: str | int | None, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": INVALID_REQUEST, "message": message}}
