"""Configurations and run modes: fixed collection, filters, auth, readiness, stdio, SSE, shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
TOKEN = "test-token-0123456789abcdef"
FILTERABLE = json.dumps(
    [
        {"name": "topic", "description": "The topic", "field_type": "keyword", "condition": "==", "required": False},
        {"name": "year", "description": "Not before this year", "field_type": "integer", "condition": ">="},
        {"name": "tags", "description": "Any of these tags", "field_type": "keyword", "condition": "any"},
    ]
)


async def wait_for_calls_in_flight(server: ServerProcess, count: int) -> None:
    with anyio.fail_after(30):
        while httpx.get(server.base + "/readyz").json().get("calls_in_flight", 0) < count:
            await anyio.sleep(0.05)


async def test_collection_name_setting_hides_the_parameter(start_server: Start) -> None:
    server = start_server({"COLLECTION_NAME": "fixed", "TOOL_FIND_DESCRIPTION": "custom find text"})
    async with Client(server.mcp_url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        for tool in tools.values():
            assert not {"collection_name", "collection_names"} & set(tool.input_schema.get("properties", {}))
        assert tools["qdrant-find"].description == "custom find text"
        stored = await client.call_tool("qdrant-store", {"information": "fixed collection memory"})
        assert stored.structured_content["collection"] == "fixed"
        found = await client.call_tool("qdrant-find", {"query": "memory"})
        assert found.structured_content["hits"][0]["document"] == "fixed collection memory"


async def test_filterable_fields_become_typed_parameters(start_server: Start) -> None:
    server = start_server({"FILTERABLE_FIELDS": FILTERABLE, "COLLECTION_NAME": "notes"})
    async with Client(server.mcp_url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        properties = tools["qdrant-find"].input_schema["properties"]
        assert properties["topic"]["anyOf"][0]["type"] == "string"
        assert properties["year"]["anyOf"][0]["type"] == "integer"
        assert properties["tags"]["anyOf"][0]["type"] == "array"
        assert "query_filter" not in properties
        await client.call_tool(
            "qdrant-store-many",
            {
                "entries": [
                    {
                        "information": "quarterly planning notes",
                        "metadata": {"topic": "work", "year": 2024, "tags": ["plan"]},
                    },
                    {
                        "information": "holiday planning notes",
                        "metadata": {"topic": "travel", "year": 2025, "tags": ["trip"]},
                    },
                    {
                        "information": "old planning notes",
                        "metadata": {"topic": "work", "year": 2019, "tags": ["plan"]},
                    },
                ]
            },
        )

        async def documents(**filters: object) -> list[str]:
            result = await client.call_tool("qdrant-find", {"query": "planning", **filters})
            assert not result.is_error, result.content
            return sorted(hit["document"] for hit in result.structured_content["hits"])

        assert await documents(topic="work") == ["old planning notes", "quarterly planning notes"]
        assert await documents(topic="work", year=2020) == ["quarterly planning notes"]
        assert await documents(tags=["trip"]) == ["holiday planning notes"]
        bad = await client.call_tool("qdrant-find", {"query": "planning", "year": "recent"})
        assert bad.is_error and "year" in bad.content[0].text


async def test_arbitrary_filter_only_when_allowed(start_server: Start) -> None:
    server = start_server({"QDRANT_ALLOW_ARBITRARY_FILTER": "true", "COLLECTION_NAME": "raw"})
    async with Client(server.mcp_url) as client:
        await client.call_tool(
            "qdrant-store-many",
            {
                "entries": [
                    {"information": "red apple", "metadata": {"color": "red"}},
                    {"information": "green apple", "metadata": {"color": "green"}},
                ]
            },
        )
        flt = {"must": [{"key": "metadata.color", "match": {"value": "green"}}]}
        result = await client.call_tool("qdrant-find", {"query": "apple", "query_filter": flt})
        assert [h["document"] for h in result.structured_content["hits"]] == ["green apple"]
        as_string = await client.call_tool("qdrant-find", {"query": "apple", "query_filter": json.dumps(flt)})
        assert len(as_string.structured_content["hits"]) == 1
        bad = await client.call_tool("qdrant-find", {"query": "apple", "query_filter": {"must": [{"key": 3}]}})
        assert bad.is_error and "query_filter.must[0]: key must be" in bad.content[0].text


async def test_bearer_token_auth(start_server: Start, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = start_server({"MCP_AUTH_TOKEN_FILE": str(tmp_path / "token")})
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abc"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.post(server.mcp_url, json={}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(server.base + "/healthz").status_code == 200
    assert httpx.get(server.base + "/readyz").status_code == 200
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(server.mcp_url, http_client=http)) as client:
        result = await client.call_tool("qdrant-list-collections", {})
        assert not result.is_error
    assert TOKEN not in server.log()


async def test_readiness_reports_unreachable_qdrant_and_calls_fail_clearly(start_server: Start) -> None:
    server = start_server({"QDRANT_URL": "http://127.0.0.1:9"}, wait="/healthz")
    deadline = time.monotonic() + 30
    while True:
        ready = httpx.get(server.base + "/readyz")
        if "unreachable" in ready.text or time.monotonic() > deadline:
            break
        await anyio.sleep(0.2)
    assert ready.status_code == 503 and "unreachable" in ready.json()["reason"]
    async with Client(server.mcp_url) as client:
        result = await client.call_tool("qdrant-find", {"query": "q", "collection_name": "c"})
        assert result.is_error and "127.0.0.1:9 is unreachable" in result.content[0].text
        again = await client.call_tool("qdrant-list-collections", {})
        assert again.is_error and "QDRANT_URL" in again.content[0].text


def test_missing_model_fails_fast(start_server: Start, tmp_path: Path) -> None:
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    server = start_server({"FASTEMBED_CACHE_PATH": str(empty)}, wait=None)
    code = server.process.wait(timeout=60)
    assert code == 1
    errors = [json.loads(line) for line in server.log().splitlines() if '"error"' in line]
    assert any("cannot load embedding model" in e["message"] and "HF_HUB_OFFLINE" in e["message"] for e in errors)
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sigterm_finishes_in_flight_calls_and_exits_zero(start_server: Start, mode: str) -> None:
    server = start_server()
    results: list[bool] = []

    async def store_batch(client: Client, i: int) -> None:
        entries = [{"information": f"document {i}-{j} " + "word " * 30} for j in range(400)]
        result = await client.call_tool("qdrant-store-many", {"entries": entries, "collection_name": "drain"})
        results.append(not result.is_error)

    client = Client(server.mcp_url, mode=mode)
    await client.__aenter__()
    await client.list_tools()  # the client validates results against the output schemas it lists
    async with anyio.create_task_group() as tasks:
        for i in range(3):
            tasks.start_soon(store_batch, client, i)
        await wait_for_calls_in_flight(server, 3)  # embedding 1200 documents takes seconds
        await anyio.to_thread.run_sync(server.terminate)
    with contextlib.suppress(Exception):  # closing the session needs a server that is gone by now
        await client.__aexit__(None, None, None)
    assert results == [True, True, True]
    assert server.process.returncode == 0
    assert '"stopped"' in server.log()


async def test_stdio_transport(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "qdrant_mcp_memory", "--transport", "stdio"],
        env={**os.environ, "QDRANT_URL": ":memory:"},
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        await client.call_tool("qdrant-store", {"information": "stdio works", "collection_name": "s"})
        found = await client.call_tool("qdrant-find", {"query": "does stdio work", "collection_name": "s"})
        assert found.structured_content["hits"][0]["document"] == "stdio works"


async def test_sse_transport_for_old_clients(start_server: Start) -> None:
    server = start_server(args=("--transport", "sse"))
    async with Client(sse_client(server.base + "/sse"), mode="legacy") as client:
        await client.call_tool("qdrant-store", {"information": "sse works", "collection_name": "s"})
        found = await client.call_tool("qdrant-find", {"query": "sse", "collection_name": "s"})
        assert found.structured_content["hits"][0]["document"] == "sse works"
    assert server.terminate() == 0


async def test_embedded_default_persists(start_server: Start, tmp_path: Path) -> None:
    env = {"QDRANT_URL": None, "XDG_DATA_HOME": str(tmp_path / "data")}
    server = start_server(env)
    async with Client(server.mcp_url) as client:
        await client.call_tool("qdrant-store", {"information": "persisted memory", "collection_name": "p"})
    assert server.terminate() == 0
    folder = tmp_path / "data" / "qdrant-mcp" / "qdrant"
    assert (folder / "qdrant-mcp-memory.json").is_file() and len(list((folder / "collections").iterdir())) == 1
    server = start_server(env)
    async with Client(server.mcp_url) as client:
        found = await client.call_tool("qdrant-find", {"query": "memory", "collection_name": "p"})
        assert found.structured_content["hits"][0]["document"] == "persisted memory"
