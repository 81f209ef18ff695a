"""Optional static bearer-token auth for the HTTP transports.

A plain ASGI wrapper rather than the SDK's OAuth resource-server machinery: a shared
token has no issuer to advertise, and a 401 pointing clients at OAuth discovery would
send them looking for an authorization server that does not exist.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send


class BearerTokenAuth:
    """Requires `Authorization: Bearer <token>` on every HTTP request except `open_paths`."""

    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str]) -> None:
        self.app = app
        self._token = token.encode()
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "invalid_token", "error_description": "a valid bearer token is required"})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="qdrant-mcp", error="invalid_token"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                # compare_digest: the time taken does not reveal how much of the token matched.
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)
        return False
