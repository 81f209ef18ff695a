"""The Compose profile `auth` with the REAL Keycloak image, end to end (STACK_IMAGES=upstream).

Like test_upstream_stack.py, it runs only with STACK_IMAGES=upstream (CI's upstream job: it
pulls quay.io/keycloak/keycloak, which the development machines cannot reach). What runs:
compose.yaml with `--profile auth`, started as `keycloak mcp-server-oauth inspector-oauth`
(and Qdrant, which the server needs), telemetry off, on free loopback ports, secrets from
scripts/secrets; the server image is STACK_SERVER_IMAGE or built here.

What is checked, as a client on this machine sees it (every URL is http://localhost:PORT):
  * without a token the server answers 401 with the challenge, its Protected Resource Metadata
    names Keycloak's realm, and Keycloak's metadata names the same issuer and offers PKCE;
  * a machine client (client credentials) gets a token bound to the server (aud) and stores and
    finds; the read-only machine client sees only the read tools and gets 403 with the step-up
    challenge for a write;
  * the user `demo` signs in through the SDK's OAuth client with the realm's public client
    (`mcp-inspector`, PKCE S256), Keycloak's login page filled in over HTTP, and finds;
  * the Inspector's web UI answers on its published port.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
from stack_support import RESULTS_DIR, RUN_ID, record, run

from support import REPO, free_port

MODE = os.environ.get("STACK_IMAGES", "")
if MODE not in ("", "upstream"):
    pytest.fail(f"STACK_IMAGES={MODE!r} is not a mode: set STACK_IMAGES=upstream, or unset it", pytrace=False)

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        MODE != "upstream",
        reason="the auth profile with the real Keycloak image: runs only with STACK_IMAGES=upstream "
        "(needs quay.io; CI's upstream job sets it)",
    ),
]

SERVICES = ("keycloak", "mcp-server-oauth", "inspector-oauth")
READ_TOOLS = {"qdrant-find", "qdrant-list-collections", "qdrant-collection-info"}
WRITE_TOOLS = {"qdrant-store", "qdrant-store-many", "qdrant-delete"}
CALLBACK = "http://127.0.0.1:6276/oauth/callback"  # the realm's loopback redirect for CLI clients
UP_TIMEOUT_S = 600  # Keycloak's dev mode builds itself at the first start


@dataclass
class AuthStack:
    name: str
    env: dict[str, str]
    env_file: Path
    secrets: Path
    ports: dict[str, int]

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> Any:
        command = ["docker", "compose", "--env-file", str(self.env_file), "-f", "compose.yaml", "-p", self.name]
        return run([*command, "--profile", "auth", *args], env=self.env, timeout=timeout, check=check)

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.ports['keycloak']}/realms/mcp"

    @property
    def resource(self) -> str:
        return f"http://localhost:{self.ports['mcp']}/mcp"

    def token(self, client: str, secret: str) -> str:
        reply = httpx.post(
            f"{self.issuer}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials"},
            auth=(client, self.secret(secret)),
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])


@pytest.fixture(scope="module")
def stack(engine: None, secrets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    name = f"auth-{RUN_ID}".replace(".", "-")
    prebuilt = os.environ.get("STACK_SERVER_IMAGE", "")
    image = prebuilt or f"qdrant-mcp-memory:auth-{RUN_ID}"
    env_file = tmp_path_factory.mktemp("auth") / "empty.env"
    env_file.write_text("")  # not the repository's .env: a developer's settings must not leak in
    ports = {port: free_port() for port in ("keycloak", "mcp", "inspector", "qdrant", "qdrant-grpc")}
    env = {
        "MCP_IMAGE": image,
        "SECRETS_DIR": str(secrets_dir),
        "SECRETS_GID": os.environ["SECRETS_GID"],  # set by the secrets_dir fixture
        "BIND_ADDRESS": "127.0.0.1",
        "KEYCLOAK_PUBLISH_PORT": str(ports["keycloak"]),
        "MCP_OAUTH_PUBLISH_PORT": str(ports["mcp"]),
        "INSPECTOR_AUTH_PUBLISH_PORT": str(ports["inspector"]),
        "QDRANT_HTTP_PUBLISH_PORT": str(ports["qdrant"]),
        "QDRANT_GRPC_PUBLISH_PORT": str(ports["qdrant-grpc"]),
        "COLLECTION_NAME": name,
        "OTEL_SDK_DISABLED": "true",  # no collector started here
        "BUILD_CA_FILE": "/dev/null",
    }
    stack = AuthStack(name, env, env_file, secrets_dir, ports)
    try:
        started = time.monotonic()
        stack.compose("pull", "--quiet", "--ignore-buildable", *SERVICES, timeout=900)
        if not prebuilt:
            stack.compose("build", "--progress", "plain", "mcp-server", timeout=1800)
        up = stack.compose(
            "up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), "--no-build", "--pull", "never", *SERVICES,
            timeout=UP_TIMEOUT_S + 120, check=False,
        )  # fmt: skip
        if up.returncode != 0:
            logs = stack.compose("logs", "--no-color", "--tail", "60", check=False, timeout=120)
            pytest.fail(
                f"`docker compose --profile auth up --wait` failed:\n{up.stderr[-3000:]}\n{logs.stdout[-12000:]}"
            )
        record("auth_up_to_healthy_s", round(time.monotonic() - started, 1))
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{name}.log").write_text(logs.stdout + logs.stderr)
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=240)
        if not prebuilt and os.environ.get("STACK_KEEP_IMAGE") != "1":
            run(["docker", "image", "rm", "-f", image], check=False)


def test_the_server_sends_clients_to_keycloak(stack: AuthStack) -> None:
    refused = httpx.post(stack.resource, json={}, headers={"Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401, refused.text
    metadata_url = f"http://localhost:{stack.ports['mcp']}/.well-known/oauth-protected-resource/mcp"
    challenge = refused.headers["www-authenticate"]
    assert f'resource_metadata="{metadata_url}"' in challenge and 'scope="memory:read memory:write"' in challenge
    resource = httpx.get(metadata_url, timeout=10).json()
    assert resource["resource"] == stack.resource and resource["authorization_servers"] == [stack.issuer]
    issuer = httpx.get(f"{stack.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert issuer["issuer"] == stack.issuer and "S256" in issuer["code_challenge_methods_supported"]


async def _session(url: str, token: str) -> tuple[set[str], Any, Any]:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        writes = tools >= WRITE_TOOLS
        stored = await client.call_tool("qdrant-store", {"information": f"auth run {RUN_ID}"}) if writes else None
        found = await client.call_tool("qdrant-find", {"query": "auth run"})
    return tools, stored, found


def test_machine_clients_get_what_their_scopes_open(stack: AuthStack) -> None:
    token = stack.token("mcp-automation", "keycloak_automation_secret")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert stack.resource in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert claims["iss"] == stack.issuer and {"memory:read", "memory:write"} <= set(claims["scope"].split())
    tools, stored, found = asyncio.run(_session(stack.resource, token))
    assert tools == READ_TOOLS | WRITE_TOOLS and not stored.is_error and not found.is_error
    assert f"auth run {RUN_ID}" in [hit["document"] for hit in found.structured_content["hits"]]

    reader = stack.token("mcp-reader", "keycloak_reader_secret")
    tools, stored, found = asyncio.run(_session(stack.resource, reader))
    assert tools == READ_TOOLS and stored is None and not found.is_error
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {reader}"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    opened = httpx.post(stack.resource, json=initialize, headers=headers, timeout=30)
    headers |= {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "qdrant-store", "arguments": {}}}
    refused = httpx.post(stack.resource, json=call, headers=headers, timeout=30)
    assert refused.status_code == 403, refused.text
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert 'scope="memory:write"' in refused.headers["www-authenticate"]


async def _keycloak_login(url: str, username: str, password: str) -> dict[str, str]:
    """A user at a browser: Keycloak's login page, filled in; the redirect's parameters."""
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as browser:
        page = await browser.get(url)
        for _ in range(10):
            if page.is_redirect:
                location = urljoin(str(page.url), page.headers["location"])
                if location.startswith(CALLBACK):
                    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
                page = await browser.get(location)
                continue
            assert page.status_code == 200, page.text[:2000]
            form = re.search(r"<form[^>]*kc-form-login[^>]*>", page.text)
            action = re.search(r'action="([^"]+)"', form.group(0)) if form else None
            assert action, page.text[:2000]
            form_data = {"username": username, "password": password, "credentialId": ""}
            page = await browser.post(html.unescape(action.group(1)), data=form_data)
    raise AssertionError("Keycloak never redirected back to the client")


async def _sign_in(stack: AuthStack) -> tuple[list[str], Any]:
    import httpx2
    from mcp.client import Client
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata

    class Storage:
        def __init__(self) -> None:
            self.tokens: Any = None
            self.client = OAuthClientInformationFull(
                client_id="mcp-inspector",
                redirect_uris=[CALLBACK],
                token_endpoint_auth_method="none",  # noqa: S106  # a public client: no secret
                issuer=stack.issuer,
            )

        async def get_tokens(self) -> Any:
            return self.tokens

        async def set_tokens(self, tokens: Any) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> Any:
            return self.client

        async def set_client_info(self, client_info: Any) -> None:
            self.client = client_info

    opened: list[str] = []
    answer: dict[str, str] = {}

    async def open_browser(url: str) -> None:
        opened.append(url)
        answer.update(await _keycloak_login(url, "demo", stack.secret("keycloak_demo_password")))

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    metadata = OAuthClientMetadata(redirect_uris=[CALLBACK], client_name="tests/stack")
    auth = OAuthClientProvider(stack.resource, metadata, Storage(), open_browser, callback)
    async with (
        httpx2.AsyncClient(auth=auth, timeout=60) as http,
        Client(streamable_http_client(stack.resource, http_client=http)) as client,
    ):
        found = await client.call_tool("qdrant-find", {"query": "auth run"})
    return opened, found


def test_a_user_signs_in_with_pkce_through_the_sdk_client(stack: AuthStack) -> None:
    opened, found = asyncio.run(_sign_in(stack))
    [url] = opened
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{stack.issuer}/protocol/openid-connect/auth")
    assert query["client_id"] == "mcp-inspector" and query["code_challenge_method"] == "S256"
    assert query["resource"] == stack.resource
    assert not found.is_error, found


def test_the_inspector_ui_answers(stack: AuthStack) -> None:
    page = httpx.get(f"http://localhost:{stack.ports['inspector']}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:500]
    realm = (REPO / "keycloak" / "realm-mcp.json").read_text()
    assert "${MCP_INSPECTOR_ORIGIN}/oauth/callback" in realm  # the UI's redirect, registered for it
