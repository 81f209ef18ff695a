"""Planted secrets and documents never leak: not in logs at any level, error messages, spans, or /readyz.

(The image side — the build's CA secret in no layer, no secret in the image's environment —
is checked by tests/stack/test_image.py.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from oidc import CLIENTS, RESOURCE_CLIENT, deploy
from otlp import Receiver, attributes, point_attributes

from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


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


async def test_oauth_tokens_secrets_and_subjects_appear_nowhere(receiver: Receiver, tmp_path: Path) -> None:
    """OAuth mode at DEBUG with telemetry and MCP_CALLER_HASH_KEY on: the access tokens (accepted,
    introspected or refused), the server's client secret and the hash key are in no log line, no
    answer and no export; callers appear on spans only as `user.hash`, and on no metric."""
    key = f"planted-hash-key-{uuid.uuid4().hex}"
    (tmp_path / "hash-key").write_text(key)
    env = {
        "LOG_LEVEL": "DEBUG",
        "MCP_CALLER_HASH_KEY_FILE": str(tmp_path / "hash-key"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    answers = []
    with deploy(tmp_path, env) as deployment:
        tokens = {client: deployment.token(client) for client in ("both", "opaque", "reader")}
        for token in tokens.values():
            http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            async with http, Client(streamable_http_client(deployment.resource, http_client=http)) as session:
                await session.call_tool("qdrant-find", {"query": "anything", "collection_name": "c"})
                stored = httpx.post(
                    deployment.resource,
                    json={"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "qdrant-store"}},
                    headers={**JSON_HEADERS, "Authorization": f"Bearer {token}"},
                )
                answers.append(stored.text + json.dumps(dict(stored.headers)))
        refused = tokens["both"][:-4] + "AAAA"
        wrong = httpx.post(deployment.resource, json={}, headers={"Authorization": f"Bearer {refused}"})
        answers.append(wrong.text + json.dumps(dict(wrong.headers)))
        time.sleep(1)  # a metric export interval
        issuer = deployment.provider.issuer
    places = {"log": deployment.server.log(), "answers": "\n".join(answers), "telemetry": everything_exported(receiver)}
    assert receiver.spans(), "spans were exported (the checks below are not vacuous)"
    for where, text in places.items():
        for secret in [*tokens.values(), refused, RESOURCE_CLIENT.secret, key]:
            assert secret not in text, f"a secret leaked into the {where}: {secret[:12]}..."
    subjects = {CLIENTS[client].client_id for client in tokens}
    calls = [attributes(span.attributes) for span in receiver.spans() if span.name == "tools/call qdrant-find"]
    # The JWTs name their subject (RFC 9068: the client, for client credentials); the provider's
    # introspection of the opaque token names none, and then there is nothing to hash.
    named = {CLIENTS["both"].client_id, CLIENTS["reader"].client_id}
    expected = {hmac.new(key.encode(), f"{issuer}\x00{s}".encode(), hashlib.sha256).hexdigest()[:32] for s in named}
    assert {call.get("user.hash") for call in calls} == {*expected, None}
    assert not any(subject in places["telemetry"] or subject in places["log"] for subject in subjects)
    labels = [point for metric in receiver.metrics() for point in point_attributes(metric)]
    assert labels and not any(key.startswith("user.") or value in expected for p in labels for key, value in p.items())
