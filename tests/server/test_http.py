"""The server over streamable HTTP, driven by the SDK's real client, in both protocol eras."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mcp.client import Client

from support import ServerProcess

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]  # 2025-11-25 sessions; 2026-07-28 stateless (auto discovers it)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.content and result.content[0].type == "text" and result.content[0].text
    return result.structured_content


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_are_typed_structured_and_annotated(shared_server: ServerProcess, mode: str) -> None:
    async with Client(shared_server.mcp_url, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "qdrant-store",
        "qdrant-store-many",
        "qdrant-find",
        "qdrant-get",
        "qdrant-list",
        "qdrant-update",
        "qdrant-delete",
        "qdrant-list-collections",
        "qdrant-collection-info",
    }
    for tool in tools.values():
        assert tool.output_schema is not None and tool.annotations is not None and tool.description
    find = tools["qdrant-find"].input_schema
    assert find["required"] == ["query"]
    assert find["properties"]["limit"]["maximum"] == 100 and find["properties"]["limit"]["default"] == 10
    assert "query_filter" not in find["properties"]  # only with QDRANT_ALLOW_ARBITRARY_FILTER
    store = tools["qdrant-store"].input_schema["properties"]
    assert store["information"]["minLength"] == 1 and store["information"]["maxLength"] == 65536
    assert {"collection_name", "metadata", "id"} <= set(store)
    assert tools["qdrant-find"].annotations.read_only_hint is True
    assert tools["qdrant-delete"].annotations.destructive_hint is True
    assert tools["qdrant-store"].annotations.read_only_hint is False
    assert tools["qdrant-store"].annotations.idempotent_hint is True
    assert tools["qdrant-store-many"].input_schema["properties"]["entries"]["maxItems"] == 1000


@pytest.mark.parametrize("mode", ERAS)
async def test_store_find_delete_round_trip(shared_server: ServerProcess, mode: str) -> None:
    collection = f"roundtrip-{mode}"
    async with Client(shared_server.mcp_url, mode=mode) as client:
        stored = await call(
            client,
            "qdrant-store",
            {
                "information": "Ada Lovelace wrote the first published computer program.",
                "metadata": {"person": "ada"},
                "collection_name": collection,
            },
        )
        many = await call(
            client,
            "qdrant-store-many",
            {
                "collection_name": collection,
                "entries": [
                    {"information": "Grace Hopper popularised machine-independent programming languages."},
                    {"information": "Sourdough needs a long fermentation.", "metadata": '{"topic": "food"}'},
                ],
            },
        )
        assert len(many["ids"]) == 2
        found = await call(
            client, "qdrant-find", {"query": "who wrote the first program", "collection_name": collection}
        )
        assert found["collection_exists"] and found["hits"][0]["id"] == stored["id"]
        assert found["hits"][0]["metadata"] == {"person": "ada"} and 0 < found["hits"][0]["score"] <= 1
        limited = await call(
            client, "qdrant-find", {"query": "bread", "collection_name": collection, "limit": 1, "score_threshold": 0.3}
        )
        assert [hit["metadata"] for hit in limited["hits"]] == [{"topic": "food"}]
        listed = await call(client, "qdrant-list-collections", {})
        assert collection in listed["collections"]
        info = await call(client, "qdrant-collection-info", {"collection_name": collection})
        assert info["points_count"] == 3 and info["searchable"]
        assert info["vectors"] == [{"name": "fast-all-minilm-l6-v2", "size": 384, "distance": "Cosine"}]
        deleted = await call(client, "qdrant-delete", {"collection_name": collection, "ids": [stored["id"]]})
        assert deleted["deleted"] == 1
        deleted = await call(
            client, "qdrant-delete", {"collection_name": collection, "metadata_match": {"topic": "food"}}
        )
        assert deleted["deleted"] == 1
        info = await call(client, "qdrant-collection-info", {"collection_name": collection})
        assert info["points_count"] == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_resources_describe_collections(shared_server: ServerProcess, mode: str) -> None:
    async with Client(shared_server.mcp_url, mode=mode) as client:
        await call(client, "qdrant-store", {"information": "resource test", "collection_name": "res"})
        listed = await client.read_resource("qdrant://collections")
        assert "res" in json.loads(listed.contents[0].text)["collections"]
        one = await client.read_resource("qdrant://collections/res")
        assert json.loads(one.contents[0].text)["points_count"] == 1
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["qdrant://collections/{name}"]


async def test_missing_collection_is_an_empty_result_that_says_so(shared_server: ServerProcess) -> None:
    async with Client(shared_server.mcp_url) as client:
        result = await client.call_tool("qdrant-find", {"query": "anything", "collection_name": "never-created"})
    assert not result.is_error
    assert result.structured_content == {
        "collection": "never-created",
        "collections": ["never-created"],
        "missing_collections": ["never-created"],
        "query": "anything",
        "collection_exists": False,
        "hits": [],
        "search": "dense",
    }
    assert "does not exist" in result.content[0].text


# Bad input (malformed, hostile and over-bound calls) is tested in tests/reliability/.


async def test_the_log_holds_no_documents_at_info(shared_server: ServerProcess) -> None:
    secret_text = "my confidential diary entry 8d2f1"
    async with Client(shared_server.mcp_url) as client:
        await call(client, "qdrant-store", {"information": secret_text, "collection_name": "private"})
    assert secret_text not in shared_server.log()
    for line in shared_server.log().splitlines():
        json.loads(line)  # every line is one JSON object


def test_health_endpoints(shared_server: ServerProcess) -> None:
    assert httpx.get(shared_server.base + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(shared_server.base + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example:8000"}, 421),
        ({"Origin": "http://evil.example"}, 403),
        ({"Host": "mcp-server:8000"}, 200),
        ({"Host": "localhost:8000", "Origin": "http://localhost:6274"}, 200),
    ],
)
def test_dns_rebinding_protection(shared_server: ServerProcess, headers: dict[str, str], status: int) -> None:
    response = httpx.post(shared_server.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
    assert response.status_code == status, response.text
