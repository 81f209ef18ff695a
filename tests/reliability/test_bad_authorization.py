"""Hostile `Authorization` headers, sent as raw bytes, to a server in each auth mode.

`token` is MCP_AUTH_TOKEN; `oauth` trusts a real OpenID provider on loopback (tests/oidc.py).
Each request must be refused with a clear 4xx (never a 5xx, never a traceback in the log), must
not get in, and the server must keep serving the valid token afterwards.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from oidc import deploy
from reliability_support import MODERN, MODERN_META, LogWatch

from support import ServerProcess, spawn_server

pytestmark = pytest.mark.reliability

TOKEN = "reliability-token-0123456789abcdef"
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}}).encode()


def segment(value: bytes | object) -> bytes:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def bearer_jwt(header: bytes | object, payload: bytes | object = b"{}", signature: bytes = b"c2ln") -> bytes:
    return b"Authorization: Bearer " + segment(header) + b"." + segment(payload) + b"." + signature


PROBES: dict[str, list[bytes]] = {
    "none": [],
    "empty": [b"Authorization: "],
    "scheme-only": [b"Authorization: Bearer"],
    "scheme-and-space": [b"Authorization: Bearer "],
    "basic": [b"Authorization: Basic dXNlcjpwYXNzd29yZA=="],
    "digest": [b'Authorization: Digest username="u", realm="r", nonce="n", response="x"'],
    "bearer-tab": [b"Authorization: Bearer\tabcdef"],
    "lowercase-garbage": [b"authorization: bearer garbage"],
    "latin1-bytes": [b"Authorization: Bearer \xe9\xff\xfe\x80"],
    "utf8": ["Authorization: Bearer ünïcödé-tökén".encode()],
    "nul-byte": [b"Authorization: Bearer abc\x00def"],
    "token-with-space": [b"Authorization: Bearer abc def"],
    "64-kib": [b"Authorization: Bearer " + b"a" * 65536],
    "dots-only": [b"Authorization: Bearer " + b"." * 2000],
    "three-empty-segments": [b"Authorization: Bearer .."],
    "jwt-garbage": [b"Authorization: Bearer a.b.c"],
    "jwt-header-not-json": [bearer_jwt(b"not json")],
    "jwt-header-array": [bearer_jwt(["RS256"])],
    "jwt-header-nested-5000": [bearer_jwt(b"[" * 5000 + b"]" * 5000)],
    "jwt-header-object-nested-3000": [bearer_jwt(b'{"alg":' * 3000 + b'"RS256"' + b"}" * 3000)],
    "jwt-alg-object": [bearer_jwt({"alg": {}, "kid": "k"})],
    "jwt-alg-list": [bearer_jwt({"alg": ["RS256"], "kid": "k"})],
    "jwt-alg-number": [bearer_jwt({"alg": 256, "kid": "k"})],
    "jwt-kid-object": [bearer_jwt({"alg": "RS256", "kid": {"a": 1}})],
    "jwt-kid-list": [bearer_jwt({"alg": "RS256", "kid": ["k"]})],
    "jwt-kid-traversal": [bearer_jwt({"alg": "RS256", "kid": "../../../../etc/passwd"})],
    "jwt-kid-8k": [bearer_jwt({"alg": "RS256", "kid": "k" * 8000})],
    "jwt-payload-not-json": [bearer_jwt({"alg": "RS256", "kid": "k"}, b"\xff\xfe")],
    "jwt-payload-nested": [bearer_jwt({"alg": "RS256", "kid": "k"}, b"[" * 5000 + b"]" * 5000)],
    "jwe-shaped": [b"Authorization: Bearer " + b".".join(segment({"alg": "dir"}) for _ in range(5))],
    "garbage-then-valid": [b"Authorization: Bearer garbage", b"Authorization: {valid}"],
    "proxy-authorization-only": [b"Proxy-Authorization: {valid}"],
}


@dataclass(frozen=True)
class Target:
    mode: str
    server: ServerProcess
    valid: bytes  # the value of an Authorization header that gets in
    log: LogWatch

    def send(self, headers: list[bytes], path: str = "/mcp") -> tuple[int, bytes]:
        """One POST with exactly these header lines; the status and the whole answer."""
        lines = [
            f"POST {path} HTTP/1.1".encode(),
            f"Host: 127.0.0.1:{self.server.port}".encode(),
            b"Accept: application/json, text/event-stream",
            b"Content-Type: application/json",
            f"Mcp-Protocol-Version: {MODERN}".encode(),
            b"Mcp-Method: tools/list",
            *(line.replace(b"{valid}", self.valid) for line in headers),
            f"Content-Length: {len(BODY)}".encode(),
            b"Connection: close",
        ]
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as sock:
            sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + BODY)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1]), answer


@pytest.fixture(scope="module", params=["token", "oauth"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    workdir: Path = tmp_path_factory.mktemp(f"auth-{request.param}")
    if request.param == "token":
        server = spawn_server(workdir, {"MCP_AUTH_TOKEN": TOKEN})
        yield Target("token", server, f"Bearer {TOKEN}".encode(), LogWatch(server.log_path))
        assert server.terminate() == 0, server.log()[-5000:]
    else:
        with deploy(workdir) as deployment:
            valid = f"Bearer {deployment.token('both')}".encode()
            yield Target("oauth", deployment.server, valid, LogWatch(deployment.server.log_path))


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_a_hostile_authorization_header_is_refused_cleanly(target: Target, probe: str) -> None:
    target.log.skip()
    status, answer = target.send(PROBES[probe])
    assert status in (400, 401, 431), answer[:600]
    assert b"Traceback" not in answer
    if status == 401:
        assert b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer"), answer[:600]
    served, answer = target.send([b"Authorization: {valid}"])
    assert served == 200, f"the valid token no longer gets in after {probe}: {answer[:600]!r}"
    assert not target.log.problems(), f"{probe} left errors in the log"


def test_a_token_in_the_query_string_is_not_accepted(target: Target) -> None:
    """RFC 6750 §2.3 and the MCP specification: access tokens never travel in the URL."""
    token = target.valid.split(b" ", 1)[1].decode()
    status, answer = target.send([], path=f"/mcp?access_token={token}")
    assert status == 401, answer[:600]
