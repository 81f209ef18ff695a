"""Tokens that must not open this server get 401, each for its own reason; keys rotate without a
restart; a flood of unknown key ids does not become a flood of requests to the issuer.

Tokens are the real provider's (client credentials, the authorization code flow) or made here
from its real tokens and keys: an expired token signed by the issuer's own key is exactly what an
expired token is. The server's log must name the reason for each refusal, and never the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from oidc import APP_CLIENT_ID, APP_REDIRECT, CLIENTS, OTHER_RESOURCE, OAuthDeployment, OpenIDProvider, signing_key

from qdrant_mcp_memory.oauth.issuer import JWKS_COOLDOWN_S, Issuer, IssuerUnavailable

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    signature = token.split(".")[2]
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False}), signature


def initialize(deployment: OAuthDeployment, token: str) -> httpx.Response:
    return httpx.post(deployment.resource, json=INITIALIZE, headers={**HEADERS, "Authorization": f"Bearer {token}"})


class KeyServer(ThreadingHTTPServer):
    """A JWKS an attacker controls, on loopback: counts who comes to fetch it."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _KeyHandler)
        self.jwks = jwks
        self.fetches = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/jwks"


class _KeyHandler(BaseHTTPRequestHandler):
    server: KeyServer

    def do_GET(self) -> None:
        self.server.fetches += 1
        body = json.dumps(self.server.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def attacker() -> Iterator[tuple[dict[str, Any], KeyServer]]:
    """A key of the attacker's own, and a server publishing its public half."""
    private = signing_key(f"evil-{uuid.uuid4().hex[:6]}")
    public = {key: value for key, value in private.items() if key not in ("d", "p", "q", "dp", "dq", "qi")}
    server = KeyServer({"keys": [public]})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield private, server
    server.shutdown()
    server.server_close()


Forge = Callable[[OAuthDeployment, tuple[dict[str, Any], KeyServer]], str]


def resigned(claims: dict[str, Any] | None = None, drop: tuple[str, ...] = (), **header: Any) -> Forge:
    """A real token of the provider with `claims` changed, signed again with the provider's own key."""

    def forge(deployment: OAuthDeployment, _: Any) -> str:
        head, payload, _signature = parts(deployment.token("both"))
        payload = {key: value for key, value in {**payload, **(claims or {})}.items() if key not in drop}
        key = deployment.provider.private_key(head["kid"])
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": head["kid"], **header})

    return forge


def now(offset: int = 0) -> int:
    return int(time.time()) + offset


def alg_none(keep_signature: bool) -> Forge:
    def forge(deployment: OAuthDeployment, _: Any) -> str:
        token = deployment.token("both")
        head, payload, signature = parts(token)
        return f"{b64({**head, 'alg': 'none'})}.{b64(payload)}.{signature if keep_signature else ''}"

    return forge


def unsigned(deployment: OAuthDeployment, _: Any) -> str:
    header, payload, _signature = deployment.token("both").split(".")
    return f"{header}.{payload}."


def hmac_with_public_key(as_jwk: bool) -> Forge:
    """Algorithm confusion: HS256 keyed with the issuer's public key (its PEM, or its JWK)."""

    def forge(deployment: OAuthDeployment, _: Any) -> str:
        head, payload, _signature = parts(deployment.token("both"))
        public = deployment.provider.private_key(head["kid"]).public_key()
        if as_jwk:
            secret = jwt.algorithms.RSAAlgorithm.to_jwk(public).encode()
        else:
            from cryptography.hazmat.primitives import serialization

            secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing_input = f"{b64({**head, 'alg': 'HS256'})}.{b64(payload)}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"

    return forge


def tampered_payload(deployment: OAuthDeployment, _: Any) -> str:
    """The reader's token with the write scope written into it; the signature left as it was."""
    header, _payload, signature = deployment.token("reader").split(".")
    claims = jwt.decode(deployment.token("reader"), options={"verify_signature": False})
    return f"{header}.{b64({**claims, 'scope': 'memory:read memory:write'})}.{signature}"


def tampered_signature(deployment: OAuthDeployment, _: Any) -> str:
    header, payload, signature = deployment.token("both").split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}"


def attacker_signed(**header: Any) -> Forge:
    """Valid claims, signed with the attacker's key; `header` may point at where that key is."""

    def forge(deployment: OAuthDeployment, evil: tuple[dict[str, Any], KeyServer]) -> str:
        private, server = evil
        _head, payload, _signature = parts(deployment.token("both"))
        links = {name: server.url if value == "URL" else value for name, value in header.items()}
        if links.pop("embed", False):
            links["jwk"] = server.jwks["keys"][0]
        return jwt.encode(payload, jwt.PyJWK(private).key, algorithm="RS256", headers={"kid": private["kid"], **links})

    return forge


def another_provider(deployment: OAuthDeployment, _: Any) -> str:
    """A genuine token from another OpenID provider, for this very resource."""
    other = OpenIDProvider(deployment.provider.workdir.parent / "other", deployment.provider.resources).start()
    try:
        return other.token(CLIENTS["both"], deployment.resource)
    finally:
        other.stop()


def wrong_audience(deployment: OAuthDeployment, _: Any) -> str:
    """A genuine token from the same provider, issued for another resource server."""
    return deployment.token("both", resource=OTHER_RESOURCE)


def opaque_for_another_resource(deployment: OAuthDeployment, _: Any) -> str:
    return deployment.token("opaque", resource=OTHER_RESOURCE)


CASES: dict[str, tuple[Forge, str]] = {
    # id: (the token, what the server's log must give as the reason)
    "expired": (resigned({"exp": now(-120), "iat": now(-720)}), "expired"),
    "not-yet-valid": (resigned({"nbf": now(600)}), "not valid yet"),
    "issued-in-the-future": (resigned({"iat": now(600)}), "not valid yet"),
    "no-expiry": (resigned(drop=("exp",)), "MissingRequiredClaimError"),
    "wrong-audience": (wrong_audience, "another audience"),
    "no-audience": (resigned(drop=("aud",)), "MissingRequiredClaimError"),
    "wrong-issuer": (resigned({"iss": "http://127.0.0.1:1"}), "another issuer"),
    "another-provider": (another_provider, "does not publish"),
    "alg-none": (alg_none(keep_signature=False), "'none' is not accepted"),
    "alg-none-with-signature": (alg_none(keep_signature=True), "'none' is not accepted"),
    "unsigned": (unsigned, "signature"),
    "hs256-keyed-with-public-pem": (hmac_with_public_key(as_jwk=False), "'HS256' is not accepted"),
    "hs256-keyed-with-public-jwk": (hmac_with_public_key(as_jwk=True), "'HS256' is not accepted"),
    "tampered-payload": (tampered_payload, "signature does not verify"),
    "tampered-signature": (tampered_signature, "signature does not verify"),
    "attacker-key": (attacker_signed(), "does not publish"),
    "attacker-key-jku": (attacker_signed(jku="URL"), "does not publish"),
    "attacker-key-x5u": (attacker_signed(x5u="URL"), "does not publish"),
    "attacker-key-embedded-jwk": (attacker_signed(embed=True), "does not publish"),
    "crit-header": (resigned(crit=["exp"]), "Unsupported critical extension"),
    "jwe-shaped": (
        lambda d, e: ".".join(["eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0", "", "aaaa", "bbbb", "cccc"]),
        "JWE",
    ),
    "opaque-unknown": (lambda d, e: uuid.uuid4().hex + uuid.uuid4().hex, "inactive"),
    "opaque-for-another-resource": (opaque_for_another_resource, "another audience"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_token_that_does_not_open_this_server_gets_401(
    deployment: OAuthDeployment, attacker: tuple[dict[str, Any], KeyServer], case: str
) -> None:
    forge, reason = CASES[case]
    token = forge(deployment, attacker)
    logged = len(deployment.server.log())
    response = initialize(deployment, token)
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and "resource_metadata=" in challenge
    time.sleep(0.05)  # the log line reaches the file
    log = deployment.server.log()[logged:]
    refusals = [json.loads(line) for line in log.splitlines() if '"bearer token refused"' in line]
    assert refusals and reason in refusals[-1]["reason"], log
    assert token not in deployment.server.log()
    assert attacker[1].fetches == 0, "a key URL from a token's header was fetched"


def test_an_id_token_is_not_an_access_token(deployment: OAuthDeployment) -> None:
    """The provider's ID token for a user is signed by the same key, but its audience is the client."""

    async def sign_in() -> dict[str, Any]:
        return await deployment.provider.authorize_pkce(
            APP_CLIENT_ID, APP_REDIRECT, "openid memory:read", "carol", deployment.resource
        )

    import anyio

    tokens = anyio.run(sign_in)
    assert initialize(deployment, tokens["id_token"]).status_code == 401
    assert initialize(deployment, tokens["access_token"]).status_code == 200


def test_a_rotated_signing_key_is_accepted_without_a_restart(deployment: OAuthDeployment) -> None:
    before = deployment.token("both")
    assert initialize(deployment, before).status_code == 200
    pid, fetches = deployment.server.pid, deployment.provider.requests("/jwks")
    kid = deployment.provider.rotate()
    after = deployment.token("both")
    assert jwt.get_unverified_header(after)["kid"] == kid
    deadline = time.monotonic() + JWKS_COOLDOWN_S + 5
    while (status := initialize(deployment, after).status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200, "a token signed with the new key was not accepted"
    assert initialize(deployment, before).status_code == 200, "the old key, still published, still verifies"
    assert deployment.server.pid == pid and deployment.server.alive()
    assert deployment.provider.requests("/jwks") - fetches <= 2


def test_unknown_key_ids_refetch_the_keys_at_most_once_per_cooldown(
    deployment: OAuthDeployment, attacker: tuple[dict[str, Any], KeyServer]
) -> None:
    private, _server = attacker
    payload = parts(deployment.token("both"))[1]
    fetches, started = deployment.provider.requests("/jwks"), time.monotonic()
    for _ in range(20):
        token = jwt.encode(payload, jwt.PyJWK(private).key, algorithm="RS256", headers={"kid": uuid.uuid4().hex})
        assert initialize(deployment, token).status_code == 401
    elapsed = time.monotonic() - started
    assert deployment.provider.requests("/jwks") - fetches <= 1 + elapsed / JWKS_COOLDOWN_S


def test_a_token_that_passed_is_not_checked_again_for_each_request(deployment: OAuthDeployment) -> None:
    """A client sends its token with every request: an opaque one is introspected once, not each time."""
    token, asked = deployment.token("opaque"), deployment.provider.requests("/token/introspection")
    for _ in range(5):
        assert initialize(deployment, token).status_code == 200
    assert deployment.provider.requests("/token/introspection") == asked + 1


def test_with_the_issuer_down_known_keys_still_verify_and_the_rest_gets_503(deployment: OAuthDeployment) -> None:
    jwt_token, opaque = deployment.token("both"), deployment.token("opaque")
    deployment.provider.stop()
    try:
        assert initialize(deployment, jwt_token).status_code == 200
        response = initialize(deployment, opaque)
        assert response.status_code == 503 and response.headers["retry-after"], response.text
        assert response.json()["error"] == "temporarily_unavailable"
    finally:
        deployment.provider.start()
    # The provider keeps its tokens in memory: the restarted one knows a new token, not the old.
    assert initialize(deployment, deployment.token("opaque")).status_code == 200


@pytest.mark.anyio
async def test_metadata_that_names_another_issuer_is_refused(deployment: OAuthDeployment) -> None:
    """RFC 8414 §3.3: `issuer` in the metadata must be the configured issuer exactly (here it lacks
    the configured trailing slash), so a look-alike issuer's keys are never trusted."""
    issuer = Issuer(deployment.provider.issuer + "/")
    try:
        with pytest.raises(IssuerUnavailable, match="must be identical"):
            await issuer.metadata()
    finally:
        await issuer.aclose()


def test_the_tenant_claim_reaches_the_verified_claims(deployment: OAuthDeployment, tmp_path: Path) -> None:
    """The provider's tenant claim is among what the verifier hands on with the caller (tenancy's input)."""
    import anyio

    from qdrant_mcp_memory.oauth.verifier import OAuthTokenVerifier

    async def verify() -> Any:
        issuer = Issuer(deployment.provider.issuer)
        try:
            return await OAuthTokenVerifier(issuer, [deployment.resource]).verify_token(deployment.token("reader"))
        finally:
            await issuer.aclose()

    access = anyio.run(verify)
    assert access is not None and access.claims["org"] == "org-mcp-reader" and access.subject == "mcp-reader"
    assert access.scopes == ["memory:read"] and access.resource == deployment.resource


def test_the_log_says_whom_the_server_trusts(deployment: OAuthDeployment) -> None:
    [line] = [json.loads(line) for line in deployment.server.log().splitlines() if '"OAuth mode"' in line]
    assert line["issuer"] == deployment.provider.issuer and line["resource"] == deployment.resource
    assert line["scopes"] == ["memory:read", "memory:write"]
