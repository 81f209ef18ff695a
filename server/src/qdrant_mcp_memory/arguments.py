"""Checks on every message's parameters that no single tool signature can make.

- Unknown tool arguments are refused, naming the tool's real ones: a `query_filter` sent to
  a server configured with typed filters (or the reverse) would otherwise be dropped
  silently and the hits come back unfiltered.
- No parameter of any message may hold a lone UTF-16 surrogate (a JSON escape such as
  `\\ud800` with no partner): it has no UTF-8 form, so nothing holding it could be answered.
"""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent

from .validation import TooDeep, surrogate_paths


class ArgumentGuard(ServerMiddleware[Any]):
    def __init__(self, mcp: MCPServer) -> None:
        self.mcp = mcp
        self._parameters: dict[str, frozenset[str]] | None = None

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params or {}
        is_tool_call = ctx.method == "tools/call"
        try:
            where = next(surrogate_paths(dict(params)), None)
        except TooDeep as exc:
            if is_tool_call and isinstance(params.get("name"), str):
                return _tool_error(f"parameter {exc}")
            raise MCPError(INVALID_PARAMS, f"parameter {exc}") from None
        if where is not None:
            message = f"parameter {where} contains a lone UTF-16 surrogate (e.g. \\ud800), which is not valid Unicode"
            if is_tool_call and isinstance(params.get("name"), str) and where.startswith("arguments"):
                return _tool_error(message)
            raise MCPError(INVALID_PARAMS, message)
        if is_tool_call:
            if not isinstance(params.get("name"), str):
                raise MCPError(INVALID_PARAMS, "tools/call needs params.name: the name of a tool from tools/list")
            if not isinstance(params.get("arguments", {}), dict):
                raise MCPError(INVALID_PARAMS, "tools/call needs params.arguments to be a JSON object")
            refusal = await self._unknown_arguments(params)
            if refusal is not None:
                return _tool_error(refusal)
        return await call_next(ctx)

    async def _unknown_arguments(self, params: Any) -> str | None:
        name, arguments = params["name"], params.get("arguments") or {}
        if self._parameters is None:
            self._parameters = {
                tool.name: frozenset(tool.input_schema.get("properties", {})) for tool in await self.mcp.list_tools()
            }
        known = self._parameters.get(name)
        unknown = sorted(set(arguments) - known) if known is not None else []
        if not unknown:
            return None
        accepted = ", ".join(sorted(known or ())) or "none"
        return f"{name} has no parameter {', '.join(unknown)} (it takes: {accepted})"


def _tool_error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
