"""Which store a call works on: the whole store, or with MCP_TENANT_CLAIM the caller's tenant's part.

The tenant is the claim's value in the verified token of the request the call came with
(oauth.caller_of); it reaches the store as a value (`QdrantStore.scoped`). Tools and resources
get their store only from here, so none can reach the unscoped store while tenancy is on. A
caller whose token lacks the claim is refused: no tenant never means every tenant.
"""

# No `from __future__ import annotations`: the SDK reads the signatures of the functions using Context.
from typing import Any

from mcp.server.mcpserver import Context

from ..errors import NoTenant
from ..oauth.caller import caller_of
from ..store import QdrantStore, Tenant

# A claim value longer than this is refused rather than stored in every point.
MAX_TENANT_CHARS = 256


class Stores:
    def __init__(self, store: QdrantStore, claim: str | None) -> None:
        self.store = store
        self.claim = claim  # None: no tenancy (token mode, stdio): every call sees the whole store

    def of(self, ctx: Context[Any, Any]) -> QdrantStore:
        """The store the call of `ctx` may use."""
        if self.claim is None:
            return self.store
        request = ctx.request_context.request
        caller = caller_of(getattr(request, "scope", None))
        if caller is None:
            raise NoTenant("this server keeps each tenant's memories apart and the call carries no verified token")
        return self.store.scoped(Tenant(tenant_value(caller.claims.get(self.claim), self.claim)))


def tenant_value(value: object, claim: str) -> str:
    """The tenant a claim's value names: a non-empty string (or an integer), of bounded length."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise NoTenant(
            f"this token carries no {claim!r} claim (a non-empty string), which names whose memories a call "
            f"reads and writes here (MCP_TENANT_CLAIM={claim}): ask the authorization server to issue it"
        )
    if len(value) > MAX_TENANT_CHARS:
        raise NoTenant(f"the token's {claim!r} claim is longer than {MAX_TENANT_CHARS} characters")
    return value
