"""The door of an OAuth-protected server: who may come in, and where to get a token if not.

Built from the SDK's parts: `BearerAuthBackend` (under Starlette's `AuthenticationMiddleware`)
asks the token verifier and puts the caller into the request's scope, `AuthContextMiddleware`
makes it available to `get_access_token()`, and the SDK's handler serves the Protected
Resource Metadata (RFC 9728), at `/.well-known/oauth-protected-resource` and at its variant for
the endpoint's path. The SDK's `RequireAuthMiddleware` is not used: its challenge carries no
`scope` (the MCP specification says it should) and says `invalid_token` also to a request that
sent none (RFC 6750 §3.1 says not to); `challenge` below does both as written.

Open without a token: the metadata documents and the health routes. Everything else without a
valid token: 401 with `WWW-Authenticate: Bearer resource_metadata="…", scope="…"`. An issuer
that cannot be reached: 503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.authentication import AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .issuer import DISCOVERY_RETRY_S

ROOT_METADATA_PATH = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class ProtectedResource:
    """This server as OAuth clients see it."""

    url: str  # MCP_PUBLIC_URL, the canonical URL (RFC 8707 `resource`)
    issuer: str
    scopes: list[str]  # what it understands: Protected Resource Metadata and the 401 challenge

    @property
    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(self.url))  # type: ignore[arg-type]  # the SDK parses the string

    def challenge(self, *, error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
        """A `WWW-Authenticate` value (RFC 6750 §3, RFC 9728 §5.1)."""
        parts = [f'error="{error}"'] if error else []
        if description:
            parts.append(f'error_description="{description}"')
        parts += [f'resource_metadata="{self.metadata_url}"', f'scope="{scope or " ".join(self.scopes)}"']
        return "Bearer " + ", ".join(parts)


class OAuthGate:
    def __init__(
        self, app: ASGIApp, verifier: TokenVerifier, resource: ProtectedResource, open_paths: Iterable[str]
    ) -> None:
        self.app = app
        self.resource = resource
        self.open_paths = frozenset(open_paths)
        metadata = ProtectedResourceMetadata.model_validate(
            {
                "resource": resource.url,
                "authorization_servers": [resource.issuer],
                "scopes_supported": resource.scopes,
                "resource_name": "qdrant-mcp-memory",
            }
        )
        self.metadata = cors_middleware(ProtectedResourceMetadataHandler(metadata).handle, ["GET", "OPTIONS"])
        self.metadata_paths = frozenset({ROOT_METADATA_PATH, urlsplit(resource.metadata_url).path})
        self.protected = AuthenticationMiddleware(
            AuthContextMiddleware(self._authenticated_only),
            backend=BearerAuthBackend(verifier),
            on_error=self._unavailable,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
        elif scope["path"] in self.metadata_paths:
            await self.metadata(scope, receive, send)
        else:
            await self.protected(scope, receive, send)

    async def _authenticated_only(self, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(scope.get("user"), AuthenticatedUser):
            await self.app(scope, receive, send)
            return
        if any(name == b"authorization" for name, _ in scope["headers"]):
            error, description = "invalid_token", "the access token is invalid, expired or not for this resource"
            header = self.resource.challenge(error=error, description=description)
        else:  # no credentials at all: no error code (RFC 6750 §3.1)
            error, description = "invalid_token", "an access token is required"
            header = self.resource.challenge()
        response = JSONResponse({"error": error, "error_description": description}, 401, {"WWW-Authenticate": header})
        await response(scope, receive, send)

    def _unavailable(self, _: HTTPConnection, exc: AuthenticationError) -> Response:
        body = {"error": "temporarily_unavailable", "error_description": f"the token cannot be checked now: {exc}"}
        return JSONResponse(body, 503, {"Retry-After": str(int(DISCOVERY_RETRY_S))})
