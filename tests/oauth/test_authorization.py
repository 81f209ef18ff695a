"""OAuth as MCP clients live it: the SDK's client discovers, registers, authorizes and steps up.

Against oidc-provider on loopback, with a user played headlessly (login and consent pages
filled in over HTTP). Each flow is run in both protocol eras: 2025-11-25 sessions and the
2026-07-28 stateless requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from oidc import APP_CLIENT_ID, APP_REDIRECT, READ, WRITE, OAuthDeployment

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]
READ_TOOLS = {"qdrant-find", "qdrant-get", "qdrant-list", "qdrant-list-collections", "qdrant-collection-info"}
ALL_TOOLS = {
    *READ_TOOLS,
    "qdrant-store",
    "qdrant-store-many",
    "qdrant-update",
    "qdrant-delete",
}


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self, tokens: OAuthToken | None = None, client: OAuthClientInformationFull | None = None) -> None:
        self.tokens, self.client = tokens, client

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The user's side of the flow: opens each authorization URL, signs in as `login`, consents."""

    def __init__(self, deployment: OAuthDeployment, login: str) -> None:
        self.deployment, self.login = deployment, login
        self.opened: list[dict[str, str]] = []  # the authorization requests' parameters
        self._answer: dict[str, str] = {}

    async def open(self, url: str) -> None:
        self.opened.append({key: values[0] for key, values in parse_qs(urlsplit(url).query).items()})
        self._answer = await self.deployment.provider.authorize(url, self.login, APP_REDIRECT)

    async def callback(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(**self._answer)


@asynccontextmanager
async def oauth_client(
    deployment: OAuthDeployment, storage: MemoryStorage, browser: Browser, mode: str
) -> AsyncIterator[Client]:
    metadata = OAuthClientMetadata(redirect_uris=[APP_REDIRECT], client_name="tests/oauth")
    auth = OAuthClientProvider(deployment.resource, metadata, storage, browser.open, browser.callback)
    async with (
        httpx2.AsyncClient(auth=auth, timeout=30) as http,
        Client(streamable_http_client(deployment.resource, http_client=http), mode=mode) as client,
    ):
        yield client


def requested_scopes(request: dict[str, str]) -> set[str]:
    """The scopes an authorization request asked for, but offline_access (the SDK's, for a refresh token)."""
    return set(request["scope"].split()) - {"offline_access"}


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


@pytest.mark.parametrize("mode", ERAS)
async def test_authorization_code_with_pkce_from_the_first_401(deployment: OAuthDeployment, mode: str) -> None:
    """No token, no client registration: the 401 leads the SDK's client through Protected Resource
    Metadata to the provider's metadata, dynamic registration, the user's login and consent, and a
    code exchange with PKCE; the token it gets is bound to this server and opens every tool."""
    storage, browser = MemoryStorage(), Browser(deployment, f"alice-{mode}")
    before = deployment.provider.requests("/reg")
    async with oauth_client(deployment, storage, browser, mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        stored = await call(client, "qdrant-store", {"information": f"alice's {mode} note", "collection_name": mode})
        found = await call(client, "qdrant-find", {"query": f"alice's {mode} note", "collection_name": mode})
    assert tools == ALL_TOOLS
    assert found["hits"][0]["id"] == stored["id"]
    assert deployment.provider.requests("/reg") == before + 1, "the client registered itself"
    [request] = browser.opened
    assert request["resource"] == deployment.resource  # RFC 8707, from the Protected Resource Metadata
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert requested_scopes(request) == {READ, WRITE}  # the 401 challenge's
    assert storage.tokens is not None and storage.client is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == deployment.resource and claims["sub"] == f"alice-{mode}"
    assert claims["client_id"] == storage.client.client_id


@pytest.mark.parametrize("mode", ERAS)
async def test_a_read_only_token_steps_up_to_write_when_a_write_is_called(
    deployment: OAuthDeployment, mode: str
) -> None:
    """A client holding a token for the read scope only calls qdrant-store: 403 with the step-up
    challenge; the SDK's client re-authorizes for the union of what it had and what was asked,
    the user consents, and the call goes through on the new token."""
    browser = Browser(deployment, f"bob-{mode}")
    tokens = await deployment.provider.authorize_pkce(
        APP_CLIENT_ID, APP_REDIRECT, READ, f"bob-{mode}", deployment.resource
    )
    storage = MemoryStorage(
        OAuthToken(access_token=tokens["access_token"], scope=READ),
        OAuthClientInformationFull(
            client_id=APP_CLIENT_ID,
            redirect_uris=[APP_REDIRECT],
            token_endpoint_auth_method="none",  # noqa: S106  # a public client: no secret
            issuer=deployment.provider.issuer,
        ),
    )
    async with oauth_client(deployment, storage, browser, mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert not browser.opened, "the read-only token was enough for tools/list"
        stored = await call(client, "qdrant-store", {"information": f"bob's {mode} note", "collection_name": mode})
    assert tools == READ_TOOLS
    assert stored["id"]
    [request] = browser.opened
    assert requested_scopes(request) == {READ, WRITE}  # what it held, and what the challenge named
    assert request["resource"] == deployment.resource
    assert storage.tokens is not None and set(storage.tokens.scope.split()) >= {READ, WRITE}
