"""A real OpenID provider on loopback for the OAuth tests: npm oidc-provider (OpenID Certified)
under Node 22, as scripts/bootstrap --tests installs it ($OIDC_PROVIDER_MODULES).

The tests configure it entirely (tests/oauth/provider/provider.mjs reads the JSON written here):
its signing keys (made here, so tests know them), the clients, the resource servers it issues
tokens for (RFC 8707 resource indicators: the MCP server's URL, with its scopes), and a tenant
claim. `authorize` plays a user at a browser: it follows the provider's redirects and fills in
its login and consent pages, returning what the client's redirect URI would receive.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support import REPO, ServerProcess, free_port, spawn_server

PROVIDER_SOURCE = REPO / "tests" / "oauth" / "provider" / "provider.mjs"
START_TIMEOUT_S = 30
READ, WRITE = "memory:read", "memory:write"
TENANT_CLAIM = "org"


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str
    scope: str
    opaque: bool = False  # its access tokens are opaque (introspected), not JWTs
    tenant: bool = True  # its access tokens carry the tenant claim

    def metadata(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.secret,
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
        }


CLIENTS = {
    "both": Client("mcp-both", "secret-both-0123456789", f"{READ} {WRITE}"),
    "reader": Client("mcp-reader", "secret-reader-0123456789", READ),
    "writer": Client("mcp-writer", "secret-writer-0123456789", WRITE),
    "opaque": Client("mcp-opaque", "secret-opaque-0123456789", f"{READ} {WRITE}", opaque=True),
    "opaque-reader": Client("mcp-opaque-reader", "secret-opaque-reader-01234", READ, opaque=True),
    "untenanted": Client("mcp-untenanted", "secret-untenanted-0123456789", f"{READ} {WRITE}", tenant=False),
}
# The MCP server's own client: it authenticates introspection requests.
RESOURCE_CLIENT = Client("qdrant-mcp", "secret-resource-server-0123", "")
# A public client registered beforehand (the SDK's client can also register itself).
APP_CLIENT_ID = "mcp-app"
APP_REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: `authorize` stops at the redirect


def signing_key(kid: str, kind: str = "RSA") -> dict[str, Any]:
    """A new private JWK (RS256 or ES256) with `kid`."""
    if kind == "RSA":
        private = jwt.algorithms.RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048), as_dict=True)
        alg = "RS256"
    else:
        private = jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
        alg = "ES256"
    return {**private, "kid": kid, "alg": alg, "use": "sig"}


def modules() -> Path:
    found = os.environ.get("OIDC_PROVIDER_MODULES")
    if not found or not (Path(found) / "oidc-provider").is_dir():
        pytest.fail("OIDC_PROVIDER_MODULES must name the node_modules scripts/bootstrap --tests installs")
    return Path(found)


@dataclass
class OpenIDProvider:
    workdir: Path
    resources: dict[str, dict[str, Any]]  # indicator -> {scope, format, alg}
    keys: list[dict[str, Any]] = field(default_factory=lambda: [signing_key(f"rsa-{uuid.uuid4().hex[:8]}")])
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"provider-{self.port}.log"

    def start(self) -> OpenIDProvider:
        """Start (or start again, with the current keys) and wait until it listens."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # ES modules resolve packages next to the script only: run a copy beside the installed ones.
        script = self.workdir / "provider.mjs"
        shutil.copy(PROVIDER_SOURCE, script)
        if not (self.workdir / "node_modules").exists():
            (self.workdir / "node_modules").symlink_to(modules())
        config = self.workdir / "provider.json"
        config.write_text(
            json.dumps(
                {
                    "issuer": self.issuer,
                    "port": self.port,
                    "keys": self.keys,
                    "resources": self.resources,
                    "clientScopes": {c.client_id: c.scope for c in CLIENTS.values()},
                    "opaqueClients": [c.client_id for c in CLIENTS.values() if c.opaque],
                    "clients": [
                        *(client.metadata() for client in CLIENTS.values()),
                        {**RESOURCE_CLIENT.metadata(), "grant_types": []},
                        {
                            "client_id": APP_CLIENT_ID,
                            "token_endpoint_auth_method": "none",
                            "application_type": "native",
                            "grant_types": ["authorization_code", "refresh_token"],
                            "redirect_uris": [APP_REDIRECT],
                        },
                    ],
                    "tenantClaim": TENANT_CLAIM,
                    "untenantedClients": [c.client_id for c in CLIENTS.values() if not c.tenant],
                }
            )
        )
        logged = len(self.log())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(modules() / ".bin" / "node"), str(script), str(config)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while f'"ready":"{self.issuer}"' not in self.log()[logged:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"oidc-provider did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def rotate(self, kind: str = "RSA") -> str:
        """Restart with a new signing key first (the old one still published): the new kid."""
        new = signing_key(f"{kind.lower()}-{uuid.uuid4().hex[:8]}", kind)
        self.keys = [new, *self.keys]
        self.stop()
        self.start()
        return str(new["kid"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self, path: str) -> int:
        """How many requests for `path` the provider has answered (since it was first started)."""
        return sum(1 for line in self.log().splitlines() if f'"path":"{path}"' in line)

    def token(self, client: Client, resource: str, scope: str | None = None) -> str:
        """An access token by the client credentials grant (RFC 6749 §4.4) for `resource` (RFC 8707)."""
        reply = httpx.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "resource": resource,
                "scope": client.scope if scope is None else scope,
            },
            auth=(client.client_id, client.secret),
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def private_key(self, kid: str | None = None) -> Any:
        """The provider's private key (the signing one, or `kid`), for tokens it would sign itself."""
        jwk = next(key for key in self.keys if kid in (None, key["kid"]))
        return jwt.PyJWK(jwk).key

    async def authorize_pkce(
        self, client_id: str, redirect_uri: str, scope: str, login: str, resource: str
    ) -> dict[str, Any]:
        """The token response (access token, and an ID token for `openid`) for `scope` by the
        authorization code grant with PKCE, as a public client gets it, `login` signing in and consenting."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode(
            {
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": scope,
                "resource": resource,
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        answer = await self.authorize(f"{self.issuer}/auth?{query}", login, redirect_uri)
        form = {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": resource,
        }
        reply = httpx.post(f"{self.issuer}/token", data=form, timeout=10)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    async def authorize(self, url: str, login: str, redirect_uri: str) -> dict[str, str]:
        """A user at a browser: open `url`, sign in as `login`, consent, and return the parameters the
        provider redirects to `redirect_uri` with (code, state, iss)."""
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as browser:
            response = await browser.get(url)
            for _ in range(20):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.startswith(redirect_uri):
                        return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
                    response = await browser.get(location)
                    continue
                assert response.status_code == 200, response.text
                action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
                prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
                assert action and prompt, response.text
                form = {"prompt": prompt.group(1)}
                if form["prompt"] == "login":
                    form |= {"login": login, "password": "any"}
                response = await browser.post(urljoin(str(response.url), action.group(1)), data=form)
        raise AssertionError("the provider never redirected back to the client")


OTHER_RESOURCE = "https://other.example/api"  # a resource server that is not ours


@dataclass
class OAuthDeployment:
    """A provider and our server in MCP_AUTH_MODE=oauth, trusting it."""

    provider: OpenIDProvider
    server: ServerProcess

    @property
    def resource(self) -> str:
        return self.server.mcp_url

    def token(self, client: str, scope: str | None = None, resource: str | None = None) -> str:
        return self.provider.token(CLIENTS[client], resource or self.resource, scope)


@contextmanager
def deploy(workdir: Path, env: dict[str, str | None] | None = None) -> Iterator[OAuthDeployment]:
    """Start a provider issuing tokens for a server on a free port, then that server; stop both after."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    resources = {
        resource: {"scope": f"{READ} {WRITE}", "format": "jwt", "alg": "RS256"},
        OTHER_RESOURCE: {"scope": f"{READ} {WRITE}", "format": "jwt", "alg": "RS256"},
    }
    provider = OpenIDProvider(workdir / "provider", resources).start()
    secret = workdir / "client-secret"
    secret.write_text(RESOURCE_CLIENT.secret)
    settings = {
        "MCP_AUTH_MODE": "oauth",
        "MCP_OAUTH_ISSUER": provider.issuer,
        "MCP_PUBLIC_URL": resource,
        "MCP_OAUTH_CLIENT_ID": RESOURCE_CLIENT.client_id,
        "MCP_OAUTH_CLIENT_SECRET_FILE": str(secret),
        **(env or {}),
    }
    try:
        server = spawn_server(workdir, settings, port=port)
        try:
            yield OAuthDeployment(provider, server)
        finally:
            code = server.terminate()
            assert code == 0, f"exit code {code} on SIGTERM:\n{server.log()[-5000:]}"
    finally:
        provider.stop()
