"""Access tokens checked as an OAuth 2.1 resource server must (RFC 9068, RFC 7662, RFC 8707).

The SDK's `TokenVerifier`: its authentication middleware asks `verify_token` for every
request and lets through only what comes back as an `AccessToken`.

- A JWT (three dot-separated parts) is checked here with PyJWT: an asymmetric algorithm from
  the allow-list, signed by one of the issuer's keys, `iss` the issuer, `aud` this resource,
  `exp`, `nbf` and `iat` within LEEWAY_S of this machine's clock, no `crit` extension PyJWT
  does not implement. Header fields that point at keys (`jku`, `x5u`, `jwk`) are never
  followed: keys come from the issuer's JWKS only.
- Anything else is an opaque token: asked of the issuer's introspection endpoint when it has
  one and this server has client credentials; an active answer is cached for at most
  INTROSPECTION_CACHE_S (keyed by the token's SHA-256, never the token).
- Every refusal is logged with its reason, never with the token.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import anyio
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from .issuer import ALGORITHMS, Issuer, IssuerUnavailable

log = logging.getLogger(__name__)

# RFC 6750 §2.1 b64token, and a size far above any real token (Entra's largest are about 8 kB).
TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_CHARS = 16_384
LEEWAY_S = 30
VERIFIED_CACHE_S = 30.0
VERIFIED_CACHE_SIZE = 4096
# Introspections in flight at once: made-up opaque tokens cost the issuer at most this much at a time.
INTROSPECTION_CONCURRENCY = 16
# Where providers put the client a token was issued to (RFC 9068, OIDC, Okta, Entra).
CLIENT_CLAIMS = ("client_id", "azp", "cid", "appid")


class Refused(Exception):
    """A token that does not open this resource; the message says why (for the log only)."""


class OAuthTokenVerifier(TokenVerifier):
    def __init__(
        self, issuer: Issuer, audiences: Sequence[str], introspection_client: tuple[str, str] | None = None
    ) -> None:
        self.issuer = issuer
        self.audiences = list(audiences)
        self.introspection_client = introspection_client
        self._verified: OrderedDict[bytes, tuple[float, AccessToken]] = OrderedDict()
        self._introspections = anyio.Semaphore(INTROSPECTION_CONCURRENCY)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            if len(token) > MAX_TOKEN_CHARS or not TOKEN_SYNTAX.fullmatch(token):
                raise Refused("not a bearer token (RFC 6750 syntax, at most 16 kB)")
            digest = hashlib.sha256(token.encode()).digest()
            cached = self._verified.get(digest)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            dots = token.count(".")
            if dots == 4:
                raise Refused("an encrypted JWT (JWE): not accepted")
            access = await (self._verify_jwt(token) if dots == 2 else self._introspect(token))
        except Refused as exc:
            log.info("bearer token refused", extra={"reason": str(exc)})
            return None
        except IssuerUnavailable as exc:
            log.warning("bearer token not checked: the issuer is unavailable", extra={"reason": str(exc)})
            raise
        self._remember(digest, access)
        return access

    def _remember(self, digest: bytes, access: AccessToken) -> None:
        lifetime = (
            VERIFIED_CACHE_S if access.expires_at is None else min(VERIFIED_CACHE_S, access.expires_at - time.time())
        )
        if lifetime > 0:
            self._verified[digest] = (time.monotonic() + lifetime, access)
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)

    async def _verify_jwt(self, token: str) -> AccessToken:
        try:
            # Also refuses a `kid` that is not a string and a `crit` naming an extension PyJWT lacks.
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Refused(f"a JWT header refused: {str(exc)[:200]}") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise Refused(f"algorithm {str(algorithm)[:20]!r} is not accepted (asymmetric signatures only)")
        key = await self.issuer.signing_key(kid, algorithm)
        if key is None:
            raise Refused(f"signed with a key the issuer does not publish for {algorithm} (kid {str(kid)[:64]!r})")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audiences,
                issuer=self.issuer.identifier,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("expired") from None
        except jwt.ImmatureSignatureError:
            raise Refused("not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise Refused(f"issued for another audience (this resource is {' or '.join(self.audiences)})") from None
        except jwt.InvalidIssuerError:
            raise Refused(f"issued by another issuer (this resource trusts {self.issuer.identifier})") from None
        except jwt.InvalidSignatureError:
            raise Refused("the signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Refused(f"invalid JWT: {type(exc).__name__}") from None
        return self._access_token(token, claims)

    async def _introspect(self, token: str) -> AccessToken:
        if self.introspection_client is None:
            raise Refused("an opaque token, and no MCP_OAUTH_CLIENT_ID to introspect it with")
        endpoint = (await self.issuer.metadata()).introspection_endpoint
        if endpoint is None:
            raise Refused("an opaque token, and the issuer's metadata names no introspection endpoint")
        async with self._introspections:
            answer = await self.issuer.introspect(endpoint, token, *self.introspection_client)
        if answer.get("active") is not True:
            raise Refused("inactive (the issuer's introspection says so)")
        now = time.time()
        if not set(_listed(answer.get("aud"))) & set(self.audiences):
            raise Refused(f"introspected: issued for another audience (this resource is {' or '.join(self.audiences)})")
        if answer.get("iss", self.issuer.identifier) != self.issuer.identifier:
            raise Refused("introspected: issued by another issuer")
        expires, not_before = answer.get("exp"), answer.get("nbf")
        if isinstance(expires, int | float) and expires + LEEWAY_S < now:
            raise Refused("introspected: expired")
        if isinstance(not_before, int | float) and not_before - LEEWAY_S > now:
            raise Refused("introspected: not valid yet")
        return self._access_token(token, answer)

    def _access_token(self, token: str, claims: dict[str, Any]) -> AccessToken:
        expires = claims.get("exp")
        subject = claims.get("sub")
        return AccessToken(
            token=token,
            client_id=next((str(claims[name]) for name in CLIENT_CLAIMS if isinstance(claims.get(name), str)), ""),
            scopes=_scopes(claims),
            expires_at=int(expires) if isinstance(expires, int | float) else None,
            resource=next((a for a in self.audiences if a in _listed(claims.get("aud"))), None),
            subject=subject if isinstance(subject, str) else None,
            claims=claims,
        )


def _scopes(claims: dict[str, Any]) -> list[str]:
    """RFC 9068's space-separated `scope`, or `scp` (Okta: a list; Entra: a string)."""
    return [scope for name in ("scope", "scp") for value in _listed(claims.get(name)) for scope in value.split()]


def _listed(value: object) -> list[str]:
    """A claim that may be one string or a list of them, as a list of its strings."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
