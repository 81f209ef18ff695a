"""What each MCP message needs from a token's scopes, and the MCP-level half of enforcing it.

The read scope opens qdrant-find, the listing and info tools and the resources; the write
scope opens the tools that store and delete (tools.TOOL_ACCESS says which is which). Neither
implies the other: a write-only client (an importer) is a real use.

Enforcement has two layers. The transport (stepup.py) answers a call the token's scopes do not
allow with HTTP 403 and the step-up challenge, before the SDK sees it. `ScopeEnforcer`, an MCP
middleware, then sees each message exactly as the SDK parsed it: it refuses again what slipped
past the transport (belt and braces), refuses tools outside the table, and trims `tools/list`
and the resource lists to what the caller may use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_REQUEST, CallToolResult, TextContent

from .caller import caller_of

Access = Literal["read", "write"]
LISTS = {"tools/list": "tools", "resources/list": "resources", "resources/templates/list": "resource_templates"}


@dataclass(frozen=True)
class ScopePolicy:
    read: str
    write: str
    tools: Mapping[str, Access]  # every tool this server offers, and the access it needs
    writes: bool = True  # False under QDRANT_READ_ONLY: the write scope opens nothing

    @property
    def advertised(self) -> list[str]:
        """The scopes this resource understands (Protected Resource Metadata, the 401 challenge)."""
        return [self.read, self.write] if self.writes else [self.read]

    def grants_everything(self, scopes: frozenset[str]) -> bool:
        return all(scope in scopes for scope in self.advertised)

    def tool_scope(self, name: str) -> str | None:
        access = self.tools.get(name)
        return None if access is None else self.read if access == "read" else self.write

    def required(self, method: object, params: object) -> tuple[str, str] | None:
        """(scope, what needs it) for a message, or None when any valid token may send it."""
        if method == "tools/call" and isinstance(params, Mapping) and isinstance(params.get("name"), str):
            scope = self.tool_scope(params["name"])
            return (scope, params["name"]) if scope else None
        if method == "resources/read":
            return self.read, "reading resources"
        return None

    def missing(self, method: object, params: object, scopes: frozenset[str]) -> tuple[str, str] | None:
        needed = self.required(method, params)
        return needed if needed is not None and needed[0] not in scopes else None


def refusal(scope: str, what: str) -> str:
    return f"{what} needs the OAuth scope {scope}, which this token does not carry"


class ScopeEnforcer(ServerMiddleware[Any]):
    def __init__(self, policy: ScopePolicy) -> None:
        self.policy = policy

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = caller_of(ctx.request.scope) if ctx.request is not None else None
        if caller is None:  # stdio, or HTTP without OAuth: nothing to enforce
            return await call_next(ctx)
        params = ctx.params or {}
        name = params.get("name")
        if ctx.method == "tools/call" and isinstance(name, str) and name not in self.policy.tools:
            # Unreachable for a tool the table lacks, whether or not it is registered.
            return CallToolResult(content=[TextContent(type="text", text=f"Unknown tool: {name}")], is_error=True)
        missing = self.policy.missing(ctx.method, params, caller.scopes)
        if missing is not None:
            raise MCPError(INVALID_REQUEST, refusal(*missing))
        result = await call_next(ctx)
        field = LISTS.get(ctx.method)
        return result if field is None else self._visible(field, result, caller.scopes)

    def _visible(self, field: str, result: HandlerResult, scopes: frozenset[str]) -> HandlerResult:
        """A list result holding only what `scopes` open (the SDK hands either the model or its dict)."""
        items = getattr(result, field, None) if not isinstance(result, dict) else result.get(_camel(field))
        if not isinstance(items, list):
            return result
        if field == "tools":
            kept = [item for item in items if self.policy.tool_scope(_name(item) or "") in scopes]
        else:
            kept = items if self.policy.read in scopes else []
        if isinstance(result, dict):
            return {**result, _camel(field): kept}
        return result.model_copy(update={field: kept})  # type: ignore[union-attr]


def _name(item: object) -> str | None:
    name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
    return name if isinstance(name, str) else None


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)
