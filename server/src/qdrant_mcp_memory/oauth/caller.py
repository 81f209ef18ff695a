"""Who is calling: the verified token's principal, as a value.

The SDK's authentication middleware puts an `AuthenticatedUser` into the ASGI scope of every
request it lets through; the same scope reaches the MCP layer as the request of each
message's context. A tool reads its caller from there:
`caller_of(ctx.request_context.request.scope)`. Nothing here is global: a caller exists only
for the request it came with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken


@dataclass(frozen=True)
class Caller:
    subject: str | None  # `sub`: unique per issuer only
    issuer: str | None
    client_id: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]  # every verified claim, e.g. an organisation claim for tenancy

    @classmethod
    def of(cls, token: AccessToken) -> Caller:
        claims = token.claims or {}
        issuer = claims.get("iss")
        return cls(
            token.subject, issuer if isinstance(issuer, str) else None, token.client_id, frozenset(token.scopes), claims
        )


def caller_of(scope: Mapping[str, Any] | None) -> Caller | None:
    """The caller of the request whose ASGI scope this is; None when OAuth did not authenticate it."""
    user = scope.get("user") if scope is not None else None
    return Caller.of(user.access_token) if isinstance(user, AuthenticatedUser) else None
