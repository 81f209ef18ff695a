"""A minimal streamable-HTTP MCP client (legacy handshake) on plain httpx, for `--client raw`
and for timing a server's first answers (the startup phase).

For workloads a cross-check only: it costs about 1 ms of CPU per call where the `mcp` SDK
client costs 1.5-4 ms, on the same 2 cores as the server, so comparing the two shows how
much the SDK client holds the numbers down. The SDK client stays the reference.
"""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace
from typing import Any

import httpx

from .errors import BenchError

PROTOCOL = "2025-06-18"


class RawClient:
    """Speaks JSON-RPC over POST; answers as plain JSON or a one-event SSE stream."""

    def __init__(
        self,
        url: str,
        mode: str = "legacy",
        read_timeout_seconds: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if mode != "legacy":
            raise BenchError("--client raw speaks the legacy handshake only")
        self.url = url
        self.http = httpx.AsyncClient(timeout=read_timeout_seconds, headers=headers)
        self.session_id: str | None = None
        self.protocol = PROTOCOL
        self.next_id = 0

    async def __aenter__(self) -> RawClient:
        info = {"name": "qdrant-mcp-bench-raw", "version": "0"}
        result = await self.request(
            "initialize", {"protocolVersion": self.protocol, "capabilities": {}, "clientInfo": info}
        )
        self.protocol = result.get("protocolVersion", self.protocol)
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(httpx.HTTPError):
            if self.session_id:
                await self.http.delete(self.url, headers={"mcp-session-id": self.session_id})
        await self.http.aclose()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        return await self._post({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})

    async def list_tools(self, cache_mode: str = "bypass") -> SimpleNamespace:
        result = await self.request("tools/list")
        return SimpleNamespace(tools=[SimpleNamespace(name=tool["name"]) for tool in result.get("tools", [])])

    async def call_tool(
        self, name: str, arguments: dict[str, Any], read_timeout_seconds: float | None = None
    ) -> SimpleNamespace:
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        return SimpleNamespace(
            is_error=bool(result.get("isError")),
            content=[SimpleNamespace(text=item.get("text")) for item in result.get("content", [])],
            structured_content=result.get("structuredContent"),
        )

    async def _post(self, payload: dict[str, Any]) -> Any:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = self.protocol
        response = await self.http.post(self.url, content=json.dumps(payload), headers=headers)
        if response.headers.get("mcp-session-id"):
            self.session_id = response.headers["mcp-session-id"]
        response.raise_for_status()
        if "id" not in payload:
            return None
        message = _answer(response, payload["id"])
        if "error" in message:
            raise RuntimeError(f"JSON-RPC error {message['error']}")
        return message["result"]


def _answer(response: httpx.Response, request_id: int) -> dict[str, Any]:
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return dict(response.json())
    for line in response.text.splitlines():
        if line.startswith("data:"):
            message = json.loads(line[5:])
            if message.get("id") == request_id:
                return dict(message)
    raise RuntimeError("no response in the SSE stream")
