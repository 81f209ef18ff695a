"""Scopes: memory:read opens finding, listing and the resources; memory:write opens storing and
deleting; neither implies the other. Tokens from the provider's client credentials grant
(JWT, and opaque ones introspected), sent by the SDK's client and as raw HTTP in both eras."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from oidc import READ, WRITE, OAuthDeployment
from reliability.reliability_support import Era, open_era

READ_TOOLS = {"qdrant-find", "qdrant-get", "qdrant-list", "qdrant-list-collections", "qdrant-collection-info"}
WRITE_TOOLS = {"qdrant-store", "qdrant-store-many", "qdrant-update", "qdrant-delete"}
CLIENT_TOOLS = {
    "both": READ_TOOLS | WRITE_TOOLS,
    "reader": READ_TOOLS,
    "writer": WRITE_TOOLS,
    "opaque": READ_TOOLS | WRITE_TOOLS,
    "opaque-reader": READ_TOOLS,
}
ERAS = ["legacy", "modern"]


@contextmanager
def era(deployment: OAuthDeployment, name: str, token: str) -> Iterator[Era]:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield open_era(name, deployment.resource, client)


@pytest.mark.anyio
@pytest.mark.parametrize("client", sorted(CLIENT_TOOLS))
async def test_tools_list_shows_what_the_token_opens(deployment: OAuthDeployment, client: str) -> None:
    token = deployment.token(client)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(deployment.resource, http_client=http)) as session,
    ):
        tools = {tool.name for tool in (await session.list_tools()).tools}
        resources = (await session.list_resources()).resources
        templates = (await session.list_resource_templates()).resource_templates
        if client == "writer":
            with pytest.raises(MCPError, match=f"qdrant-find needs the OAuth scope {READ}"):
                await session.call_tool("qdrant-find", {"query": "x", "collection_name": "c"})
        else:
            found = await session.call_tool("qdrant-find", {"query": "x", "collection_name": "none-yet"})
            assert not found.is_error and found.structured_content["collection_exists"] is False
    assert tools == CLIENT_TOOLS[client]
    # The resources open with the read scope, like the read tools.
    reads = CLIENT_TOOLS[client] >= READ_TOOLS
    assert bool(resources) is reads and bool(templates) is reads


# (client, tool, arguments, the scope the call needs and the client lacks)
REFUSED_CALLS = [
    ("reader", "qdrant-store", {"information": "x", "collection_name": "c"}, WRITE),
    ("reader", "qdrant-delete", {"ids": [1], "collection_name": "c"}, WRITE),
    ("opaque-reader", "qdrant-store-many", {"entries": [{"information": "x"}], "collection_name": "c"}, WRITE),
    ("writer", "qdrant-find", {"query": "x", "collection_name": "c"}, READ),
    ("writer", "qdrant-collection-info", {"collection_name": "c"}, READ),
]


@pytest.mark.parametrize("name", ERAS)
@pytest.mark.parametrize("call", REFUSED_CALLS, ids=[f"{client}-{tool}" for client, tool, *_ in REFUSED_CALLS])
def test_a_call_without_its_scope_gets_403_with_the_step_up_challenge(
    deployment: OAuthDeployment, name: str, call: tuple[str, str, dict[str, Any], str]
) -> None:
    client, tool, arguments, needed = call
    with era(deployment, name, deployment.token(client)) as session:
        reply = session.call(tool, arguments)
    assert reply.status == 403, reply.describe()
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
    assert f'scope="{needed}"' in challenge  # only what this call needs (the client adds what it holds)
    metadata = deployment.server.base + "/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata}"' in challenge
    # The same refusal as a JSON-RPC error for the request, for clients that do not step up.
    assert reply.error is not None and reply.payload["id"] == reply.request_id
    assert f"{tool} needs the OAuth scope {needed}" in reply.error["message"]


@pytest.mark.parametrize("name", ERAS)
def test_resources_need_the_read_scope(deployment: OAuthDeployment, name: str) -> None:
    with era(deployment, name, deployment.token("writer")) as session:
        listed = session.post("resources/list", "{}")
        read = session.post("resources/read", '{"uri": "qdrant://collections"}', "qdrant://collections")
    assert listed.status == 200 and listed.result is not None and listed.result["resources"] == []
    assert read.status == 403 and f'scope="{READ}"' in read.headers["www-authenticate"], read.describe()
    with era(deployment, name, deployment.token("reader")) as session:
        read = session.post("resources/read", '{"uri": "qdrant://collections"}', "qdrant://collections")
    assert read.status == 200 and read.result is not None and read.result["contents"], read.describe()


@pytest.mark.parametrize("name", ERAS)
def test_a_token_with_no_memory_scope_opens_nothing(deployment: OAuthDeployment, name: str) -> None:
    """Valid, for this resource, but with neither scope: it connects and sees no tool."""
    with era(deployment, name, deployment.token("both", scope="")) as session:
        assert session.list_tools() == []
        reply = session.call("qdrant-list-collections", {})
    assert reply.status == 403 and f'scope="{READ}"' in reply.headers["www-authenticate"], reply.describe()


def test_repeated_members_cannot_smuggle_a_write_past_the_scope_check(deployment: OAuthDeployment) -> None:
    """Two `name` members, a read tool and a write tool: parsers differ on which one wins, so the
    body is refused for a caller that lacks a scope."""
    with era(deployment, "legacy", deployment.token("reader")) as session:
        body = (
            '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"qdrant-find","name":"qdrant-delete",'
            '"arguments":{"ids":[1],"collection_name":"c"}}}'
        )
        response = session.client.post(deployment.resource, content=body, headers=session.headers("tools/call"))
    assert response.status_code == 400 and "appears twice" in response.text, response.text


def test_an_unknown_tool_is_not_found_for_any_scope(deployment: OAuthDeployment) -> None:
    with era(deployment, "modern", deployment.token("reader")) as session:
        reply = session.call("qdrant-drop-everything", {})
    assert reply.status == 200 and reply.is_tool_error and "Unknown tool" in (reply.refusal or ""), reply.describe()
