"""Planted secrets and documents never leak: not in logs at any level, error messages, spans, or /readyz.

(The image side — the build's CA secret in no layer, no secret in the image's environment —
is checked by tests/stack/test_image.py.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from otlp import Receiver

from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]


def everything_exported(receiver: Receiver) -> str:
    """Every exported span, metric and log record, as text."""
    return "\n".join(str(message) for messages in receiver.received.values() for message in messages)


async def test_planted_secrets_appear_nowhere(start_server: Start, receiver: Receiver, tmp_path: Path) -> None:
    token = f"planted-token-{uuid.uuid4().hex}"
    api_key = f"planted-qdrant-key-{uuid.uuid4().hex}"
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "key").write_text(api_key + "\n")
    # A remote Qdrant that is not there: every call fails and says so, with the key in play.
    server = start_server(
        {
            "MCP_AUTH_TOKEN_FILE": str(tmp_path / "token"),
            "QDRANT_URL": "http://127.0.0.1:9",
            "QDRANT_API_KEY_FILE": str(tmp_path / "key"),
            "LOG_LEVEL": "DEBUG",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        },
        wait="/healthz",
    )
    messages = []
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(server.mcp_url, http_client=http)) as client:
        for tool, arguments in [
            ("qdrant-find", {"query": "anything", "collection_name": "c"}),
            ("qdrant-store", {"information": "a note", "collection_name": "c"}),
            ("qdrant-list-collections", {}),
        ]:
            result = await client.call_tool(tool, arguments)
            assert result.is_error
            messages.append(result.content[0].text)
    wrong = httpx.post(server.mcp_url, json={}, headers={"Authorization": f"Bearer {token}x"})
    ready = httpx.get(server.base + "/readyz")
    assert server.terminate() == 0
    places = {
        "log": server.log(),
        "tool errors": "\n".join(messages),
        "401 answer": wrong.text + json.dumps(dict(wrong.headers)),
        "/readyz": ready.text,
        "telemetry": everything_exported(receiver),
    }
    assert "unreachable" in places["tool errors"] and ready.status_code == 503
    assert receiver.received["/v1/traces"], "spans were exported (the check below is not vacuous)"
    for where, text in places.items():
        assert token not in text, f"the MCP token leaked into the {where}"
        assert api_key not in text, f"the Qdrant API key leaked into the {where}"


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
async def test_documents_never_reach_the_logs_even_at_debug(start_server: Start, transport: str) -> None:
    document = f"my confidential diary entry {uuid.uuid4().hex}"
    server = start_server({"LOG_LEVEL": "DEBUG"}, args=("--transport", transport))
    if transport == "sse":
        connection = Client(sse_client(server.base + "/sse"), mode="legacy")
    else:
        connection = Client(server.mcp_url, mode="legacy")
    async with connection as client:
        stored = await client.call_tool("qdrant-store", {"information": document, "collection_name": "diary"})
        found = await client.call_tool("qdrant-find", {"query": document, "collection_name": "diary"})
    assert not stored.is_error and found.structured_content["hits"][0]["document"] == document
    assert server.terminate() == 0
    assert "uvicorn.access" in server.log(), "DEBUG took effect (request lines are logged only then)"
    assert document not in server.log()
