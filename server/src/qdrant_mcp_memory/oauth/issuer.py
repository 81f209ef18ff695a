"""The authorization server as this resource server sees it: its metadata, its signing keys, its
introspection endpoint. Everything is fetched on first need and cached.

- Metadata by RFC 8414 or OpenID Connect discovery, in the order the MCP specification gives
  clients (the SDK's own list); its `issuer` must be the configured one, character for character.
- Signing keys (JWKS) are cached for JWKS_MAX_AGE_S. A token signed by a key the cache does not
  hold triggers one refetch (the issuer may have rotated), at most once per JWKS_COOLDOWN_S
  however many such tokens arrive: a stream of made-up key ids cannot turn this server into a
  flood of requests to the issuer. Concurrent refreshes share one fetch.
- Symmetric keys are never loaded: a public JWKS holds public keys, and an HMAC "secret" taken
  from one would let anyone sign.
- When the issuer cannot be reached (and nothing usable is cached), `IssuerUnavailable` says so:
  the client gets 503, not a 401 that would make it throw its valid token away.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import jwt
from mcp.client.auth.utils import build_oauth_authorization_server_metadata_discovery_urls
from starlette.authentication import AuthenticationError

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0
MAX_DOCUMENT_BYTES = 1024 * 1024
JWKS_MAX_AGE_S = 600.0
JWKS_COOLDOWN_S = 5.0
# After a failed discovery, requests fail fast for this long instead of each waiting on the issuer.
DISCOVERY_RETRY_S = 5.0
# JOSE algorithms with a public key: never `none`, never HMAC.
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


class IssuerUnavailable(AuthenticationError):
    """The authorization server could not be asked (down, unreachable, answering nonsense)."""


@dataclass(frozen=True)
class IssuerMetadata:
    issuer: str
    jwks_uri: str | None
    introspection_endpoint: str | None


class Issuer:
    def __init__(self, identifier: str, jwks_url: str | None = None) -> None:
        self.identifier = identifier
        self._jwks_url = jwks_url
        self._metadata: IssuerMetadata | None = None
        self._discovery_failed: tuple[float, str] | None = None
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._keys_fetched = -float("inf")  # monotonic time of the last JWKS fetch attempt
        self._keys_loaded = False
        self._lock = anyio.Lock()
        self._http: httpx2.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def metadata(self) -> IssuerMetadata:
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            return await self._discover()

    async def signing_key(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The issuer's key for a token's `kid` and `alg`, or None when it has no such key (or it
        does not fit the algorithm). May refetch the JWKS; raises IssuerUnavailable."""
        if not self._fresh() or kid not in self._keys:
            async with self._lock:
                # Waiters find what the first one fetched; a refetch only when still needed and allowed.
                if not self._fresh() or (kid not in self._keys and self._may_refetch()):
                    await self._fetch_keys()
        jwk = self._keys.get(kid)
        if jwk is None or jwk.get("alg", algorithm) != algorithm:
            return None
        try:
            # The key is bound to the token's algorithm: an RSA key cannot verify an ES256 token.
            return jwt.PyJWK(jwk, algorithm)
        except jwt.PyJWTError:
            return None

    async def introspect(self, endpoint: str, token: str, client_id: str, secret: str) -> dict[str, Any]:
        """RFC 7662: the issuer's answer for `token`, this server authenticating with client_secret_basic."""
        # RFC 6749 §2.3.1: both parts are form-encoded before they are joined.
        credentials = httpx2.BasicAuth(quote(client_id, safe=""), quote(secret, safe=""))
        form = {"token": token, "token_type_hint": "access_token"}
        return await self._fetch_json("POST", endpoint, "introspection", data=form, auth=credentials)

    def _fresh(self) -> bool:
        return self._keys_loaded and time.monotonic() - self._keys_fetched < JWKS_MAX_AGE_S

    def _may_refetch(self) -> bool:
        return time.monotonic() - self._keys_fetched >= JWKS_COOLDOWN_S

    async def _fetch_keys(self) -> None:
        self._keys_fetched = time.monotonic()
        try:
            url = self._jwks_url or (await self._discover()).jwks_uri
            if url is None:
                raise IssuerUnavailable(f"the metadata of {self.identifier} names no jwks_uri: set MCP_OAUTH_JWKS_URL")
            document = await self._fetch_json("GET", url, "signing keys")
        except IssuerUnavailable:
            if self._keys_loaded:  # keep verifying with the keys held: better than refusing everyone
                log.warning("could not refresh the issuer's signing keys; using the ones held", exc_info=False)
                return
            raise
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise IssuerUnavailable(f"the signing keys of {self.identifier} are not a JWKS (no `keys` list)")
        self._keys = {
            key.get("kid"): key
            for key in keys
            if isinstance(key, dict) and key.get("kty") in ("RSA", "EC", "OKP") and key.get("use", "sig") == "sig"
        }
        self._keys_loaded = True
        log.info("loaded the issuer's signing keys", extra={"issuer": self.identifier, "keys": len(self._keys)})

    async def _discover(self) -> IssuerMetadata:
        if self._metadata is not None:
            return self._metadata
        if self._discovery_failed and time.monotonic() - self._discovery_failed[0] < DISCOVERY_RETRY_S:
            raise IssuerUnavailable(self._discovery_failed[1])
        problems = []
        for url in build_oauth_authorization_server_metadata_discovery_urls(self.identifier, self.identifier):
            try:
                document = await self._fetch_json("GET", url, "metadata")
            except IssuerUnavailable as exc:
                problems.append(str(exc))
                continue
            if document.get("issuer") != self.identifier:
                problem = (
                    f"{url} names the issuer {document.get('issuer')!r}, not MCP_OAUTH_ISSUER={self.identifier!r} "
                    "(they must be identical, RFC 8414 §3.3)"
                )
                problems.append(problem)
                continue
            self._metadata = IssuerMetadata(
                self.identifier, _string(document.get("jwks_uri")), _string(document.get("introspection_endpoint"))
            )
            log.info(
                "found the issuer's metadata",
                extra={
                    "issuer": self.identifier,
                    "metadata": url,
                    "introspection": self._metadata.introspection_endpoint is not None,
                },
            )
            return self._metadata
        reason = f"no authorization server metadata for {self.identifier}: " + "; ".join(problems)
        self._discovery_failed = (time.monotonic(), reason)
        log.warning("issuer discovery failed", extra={"reason": reason})
        raise IssuerUnavailable(reason)

    async def _fetch_json(self, method: str, url: str, what: str, **options: Any) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        try:
            async with self._http.stream(method, url, headers={"Accept": "application/json"}, **options) as reply:
                body = b""
                async for chunk in reply.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IssuerUnavailable(f"{url}: the {what} document exceeds {MAX_DOCUMENT_BYTES} bytes")
        except httpx2.HTTPError as exc:
            raise IssuerUnavailable(f"{url}: {type(exc).__name__} fetching the {what}") from None
        if reply.status_code != 200:
            raise IssuerUnavailable(f"{url}: HTTP {reply.status_code} fetching the {what}")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{url}: the {what} is not a JSON object")
        return document


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
