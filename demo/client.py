"""The MCP client the demo scripts share (seed.py, traffic.py): connect, list tools, call them.

It speaks the real protocol with the `mcp` SDK client the server image already contains:
Streamable HTTP with the bearer token (the compose `demo` service), or stdio to a server
process it starts itself (DEMO_MCP_COMMAND; the read-only demo's seeding job).

Env:
    DEMO_MCP_URL      endpoint (default http://mcp-server:8000/mcp)
    DEMO_MCP_COMMAND  instead of the URL: a server command to run over stdio, e.g.
                      `qdrant-mcp-memory --transport stdio` (it inherits this environment)
    DEMO_TOKEN_FILE   file holding the bearer token; empty/unset = no Authorization header
    DEMO_TOKEN        the token itself (instead of the file)
    DEMO_COLLECTION   collection to use when the server has no COLLECTION_NAME (default demo-memories)
    DEMO_TIMEOUT      seconds per request (default 60)
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://mcp-server:8000/mcp"


class ToolFailed(RuntimeError):
    """A tool answered with isError: the server is fine, the call was not."""


class Refused(RuntimeError):
    """The endpoint refused the session at the HTTP level (wrong or missing token, foreign Host)."""


HTTP_HINTS = {
    401: "the bearer token was refused: check DEMO_TOKEN_FILE (secrets/mcp_auth_token) or DEMO_TOKEN",
    403: "the Origin was refused (MCP_ALLOWED_ORIGINS)",
    421: "the Host was refused (MCP_ALLOWED_HOSTS)",
}


def token() -> str | None:
    value = os.environ.get("DEMO_TOKEN", "").strip()
    if value:
        return value
    path = os.environ.get("DEMO_TOKEN_FILE", "").strip()
    if path and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8").strip() or None
    return None


def text(result: Any) -> str:
    """The readable text blocks of a tool result."""
    parts = [getattr(block, "text", "") for block in result.content or []]
    return "\n".join(p for p in parts if p)


@dataclass
class Client:
    """One initialized MCP session and what its server offers."""

    session: Any
    server: str
    collection: str
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tools(self) -> list[str]:
        return sorted(self.schemas)

    @property
    def writable(self) -> bool:
        """False on a QDRANT_READ_ONLY server, which registers no store/delete tools."""
        return "qdrant-store" in self.schemas and "qdrant-delete" in self.schemas

    @property
    def names_collection(self) -> bool:
        """Whether the tools take collection_name (the server hides it when COLLECTION_NAME is set)."""
        return "collection_name" in self.schemas.get("qdrant-find", {}).get("properties", {})

    @property
    def collection_label(self) -> str:
        return repr(self.collection) if self.names_collection else "(the server's COLLECTION_NAME)"

    async def call(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """tools/call with the demo's collection; returns the CallToolResult whatever its isError."""
        args = dict(arguments)
        if self.names_collection and name != "qdrant-list-collections":
            args.setdefault("collection_name", self.collection)
        return await self.session.call_tool(name, args)

    async def call_ok(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """tools/call that raises ToolFailed when the tool reports an error."""
        result = await self.call(name, arguments)
        if result.is_error:
            raise ToolFailed(f"{name} failed: {text(result)}")
        return result


def describe() -> str:
    """Where connect() goes, for the log."""
    command = os.environ.get("DEMO_MCP_COMMAND", "").strip()
    if command:
        return f"a server over stdio ({shlex.split(command)[0]})"
    url = os.environ.get("DEMO_MCP_URL", "").strip() or DEFAULT_URL
    return f"{url} ({'with' if token() else 'without'} bearer token)"


@contextlib.asynccontextmanager
async def connect(request_timeout: float | None = None) -> AsyncIterator[Client]:
    """An initialized session to the configured server (DEMO_MCP_COMMAND, else DEMO_MCP_URL);
    each request fails after request_timeout seconds (default DEMO_TIMEOUT, 60)."""
    from mcp import ClientSession

    timeout = request_timeout if request_timeout is not None else float(os.environ.get("DEMO_TIMEOUT", "60"))
    collection = os.environ.get("DEMO_COLLECTION", "").strip() or "demo-memories"
    statuses: list[int] = []  # HTTP statuses seen, to explain a refused session
    async with contextlib.AsyncExitStack() as stack:
        command = os.environ.get("DEMO_MCP_COMMAND", "").strip()
        if command:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            argv = shlex.split(command)
            # The server child gets this whole environment (QDRANT_URL, COLLECTION_NAME, ...).
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            url = os.environ.get("DEMO_MCP_URL", "").strip() or DEFAULT_URL
            bearer = token()
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}

            async def remember(response: httpx2.Response) -> None:
                statuses.append(response.status_code)

            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=headers, timeout=httpx2.Timeout(timeout), event_hooks={"response": [remember]}
                )
            )
            read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write, read_timeout_seconds=timeout))
        try:
            init = await session.initialize()
        except Exception:
            # The SDK reports any HTTP error as "Server returned an error response": name the cause.
            status = statuses[-1] if statuses else 0
            if status in HTTP_HINTS:
                raise Refused(f"HTTP {status}: {HTTP_HINTS[status]}") from None
            raise
        listed = await session.list_tools()
        yield Client(
            session=session,
            server=f"{init.server_info.name} {init.server_info.version}",
            collection=collection,
            schemas={tool.name: tool.input_schema for tool in listed.tools},
        )
