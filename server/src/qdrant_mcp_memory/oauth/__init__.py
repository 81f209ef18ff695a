"""OAuth 2.1 for the HTTP transport (MCP_AUTH_MODE=oauth): this server as a resource server.

Clients find the authorization server through this server's Protected Resource Metadata,
obtain a token for this resource (RFC 8707) and send it on every request. The layers, from the
outside in: `OAuthGate` (gate.py: metadata, token verification, 401), the transport guard,
`ScopeGuard` (stepup.py: 403 with the step-up challenge), and inside the MCP server
`ScopeEnforcer` (scopes.py: the per-message check and the trimmed lists). The verified caller
travels with its request (caller.py), never through a global.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..settings import Settings
from .caller import Caller, caller_of
from .gate import OAuthGate, ProtectedResource
from .issuer import Issuer
from .scopes import Access, ScopeEnforcer, ScopePolicy
from .stepup import ScopeGuard
from .verifier import OAuthTokenVerifier

__all__ = ["Caller", "OAuth", "OAuthGate", "ScopeEnforcer", "ScopeGuard", "caller_of"]


@dataclass(frozen=True)
class OAuth:
    issuer: Issuer
    verifier: OAuthTokenVerifier
    policy: ScopePolicy
    resource: ProtectedResource

    @classmethod
    def from_settings(cls, settings: Settings, tools: Iterable[str], access: Mapping[str, Access]) -> OAuth:
        """For the tools this server registered; a tool without an entry in `access` stops the start."""
        if settings.oauth_issuer is None or settings.public_url is None:  # Settings refuses this already
            raise ValueError("MCP_AUTH_MODE=oauth needs MCP_OAUTH_ISSUER and MCP_PUBLIC_URL")
        tools = list(tools)
        unmapped = [name for name in tools if name not in access]
        if unmapped:
            raise ValueError(f"tools without a scope in tools.TOOL_ACCESS: {', '.join(unmapped)}")
        policy = ScopePolicy(
            settings.oauth_read_scope,
            settings.oauth_write_scope,
            {name: access[name] for name in tools},
            writes=not settings.read_only,
        )
        issuer = Issuer(settings.oauth_issuer, settings.oauth_jwks_url)
        client = None
        if settings.oauth_client_id is not None and settings.oauth_client_secret is not None:
            client = (settings.oauth_client_id, settings.oauth_client_secret.get_secret_value())
        verifier = OAuthTokenVerifier(issuer, settings.oauth_audience or [settings.public_url], client)
        resource = ProtectedResource(settings.public_url, settings.oauth_issuer, policy.advertised)
        return cls(issuer, verifier, policy, resource)
