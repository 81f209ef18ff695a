"""Seed a sample collection through the MCP endpoint and show a few tool calls.

Runs as the compose `demo` service (profile `demo`) in the server image, which already has
the `mcp` SDK client:

    docker compose --profile demo run --rm demo

It speaks the real protocol (Streamable HTTP, initialize -> tools/list -> tools/call), so it
exercises exactly what an MCP client such as an IDE agent would. Idempotent apart from
adding the sample memories again.

Env:
    DEMO_MCP_URL      endpoint (default http://mcp-server:8000/mcp)
    DEMO_TOKEN_FILE   file holding the bearer token; empty/unset = no Authorization header
    DEMO_TOKEN        the token itself (instead of the file)
    DEMO_COLLECTION   collection to seed (default demo-memories)
    DEMO_TIMEOUT      seconds per request (default 60)

Exit status: 0 when every call succeeded, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

SAMPLES: list[dict[str, Any]] = [
    {
        "information": "Qdrant is a vector database written in Rust; it stores points with payloads.",
        "metadata": {"topic": "qdrant", "kind": "fact"},
    },
    {
        "information": "The Model Context Protocol lets AI assistants call tools on servers over JSON-RPC.",
        "metadata": {"topic": "mcp", "kind": "fact"},
    },
    {
        "information": "Grafana shows the MCP server's request rate, errors and latency from Prometheus.",
        "metadata": {"topic": "observability", "kind": "howto"},
    },
    {
        "information": "Remember to water the office plants every Friday afternoon.",
        "metadata": {"topic": "chores", "kind": "reminder"},
    },
    {
        "information": "all-MiniLM-L6-v2 turns a sentence into a 384-dimensional embedding.",
        "metadata": {"topic": "embeddings", "kind": "fact"},
    },
]

QUERIES = ["which database stores vectors?", "what should I do on Fridays?"]


def _token() -> str | None:
    token = os.environ.get("DEMO_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("DEMO_TOKEN_FILE", "").strip()
    if path and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8").strip() or None
    return None


def _text(result: Any) -> str:
    parts = [getattr(block, "text", "") for block in result.content or []]
    return "\n".join(p for p in parts if p)


async def _call(session: ClientSession, name: str, arguments: dict[str, Any], schemas: dict[str, Any]) -> str:
    # With COLLECTION_NAME configured the server hides the collection_name parameter.
    props = (schemas.get(name) or {}).get("properties", {})
    arguments = {k: v for k, v in arguments.items() if k != "collection_name" or k in props}
    result = await session.call_tool(name, arguments)
    text = _text(result)
    if result.is_error:
        raise RuntimeError(f"{name} failed: {text}")
    return text


async def run() -> int:
    url = os.environ.get("DEMO_MCP_URL", "http://mcp-server:8000/mcp")
    collection = os.environ.get("DEMO_COLLECTION", "demo-memories")
    timeout = float(os.environ.get("DEMO_TIMEOUT", "60"))
    headers = {}
    token = _token()
    if token:
        headers["Authorization"] = f"Bearer {token}"

    print(f"demo: connecting to {url} ({'with' if token else 'without'} bearer token)")
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        print(f"demo: server {init.server_info.name} {init.server_info.version}")

        tools = await session.list_tools()
        names = sorted(t.name for t in tools.tools)
        schemas = {t.name: t.input_schema for t in tools.tools}
        if "collection_name" not in schemas.get("qdrant-find", {}).get("properties", {}):
            collection = "(server default COLLECTION_NAME)"
        print(f"demo: {len(names)} tools: {', '.join(names)}")

        if "qdrant-store-many" in names:
            text = await _call(
                session, "qdrant-store-many", {"entries": SAMPLES, "collection_name": collection}, schemas
            )
            print(f"demo: qdrant-store-many -> {text[:200]}")
        else:
            for sample in SAMPLES:
                await _call(session, "qdrant-store", {**sample, "collection_name": collection}, schemas)
            print(f"demo: stored {len(SAMPLES)} memories with qdrant-store")

        for query in QUERIES:
            text = await _call(
                session, "qdrant-find", {"query": query, "limit": 2, "collection_name": collection}, schemas
            )
            print(f"demo: qdrant-find {query!r} ->\n{_indent(text)}")

        if "qdrant-collection-info" in names:
            text = await _call(session, "qdrant-collection-info", {"collection_name": collection}, schemas)
            print(f"demo: qdrant-collection-info ->\n{_indent(text)}")
    print(f"demo: done; collection {collection!r} is seeded")
    return 0


def _indent(text: str) -> str:
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return "\n".join("    " + line for line in text.splitlines()[:40])


def main() -> int:
    try:
        return asyncio.run(run())
    except Exception as exc:  # one readable line for `docker compose run`
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        print(f"demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
