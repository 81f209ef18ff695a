"""Malformed HTTP and JSON-RPC at the transport, sent raw with httpx (and sockets), in both protocol eras.

Each request must get a clear 4xx (or a JSON-RPC error), never a 5xx and never a
traceback in the server's log, and the server must keep serving: after each, a 2026-era
`tools/list` and a new 2025-era session both work.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from reliability_support import ACCEPT, LEGACY, MODERN, MODERN_META, LegacyEra, LogWatch, ModernEra

from support import ServerProcess

pytestmark = pytest.mark.reliability

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
MAX_BODY = 4 * 1024 * 1024
JSON_HEADERS = {"Accept": ACCEPT, "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def modern_headers(method: str = "tools/list") -> dict[str, str]:
    return {**JSON_HEADERS, "Mcp-Protocol-Version": MODERN, "Mcp-Method": method}


def modern_request(request_id: Any = 1, method: str = "tools/list", params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {"_meta": MODERN_META}}


@dataclass
class Context:
    url: str
    session: dict[str, str]  # the headers of an open 2025-11-25 session


@dataclass(frozen=True)
class Probe:
    """One malformed request and what may come back."""

    id: str
    build: Callable[[Context], tuple[str, dict[str, str] | list[tuple[str, Any]], Any]]
    statuses: tuple[int, ...]
    codes: tuple[int, ...] | None = None  # JSON-RPC error codes accepted (None: no JSON-RPC body required)
    words: tuple[str, ...] = ()


def post(body: Any, headers: Callable[[Context], Any] | None = None) -> Callable[[Context], tuple[str, Any, Any]]:
    """A POST of `body` (bytes as they are, anything else as JSON) with the headers `headers(ctx)` picks."""

    def build(ctx: Context) -> tuple[str, Any, Any]:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return "POST", headers(ctx) if headers else dict(JSON_HEADERS), content

    return build


def in_session(extra: dict[str, str] | None = None) -> Callable[[Context], dict[str, str]]:
    return lambda ctx: {**ctx.session, **(extra or {})}


def modern(method: str = "tools/list", **extra: str) -> Callable[[Context], dict[str, str]]:
    return lambda ctx: {**modern_headers(method), **extra}


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def deep_request(levels: int, modern_era: bool) -> bytes:
    """A tools/list whose params hold an array nested `levels` deep (valid JSON, 2 bytes a level)."""
    meta = f',"_meta":{json.dumps(MODERN_META)}' if modern_era else ""
    return b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":' + deep(levels) + meta.encode() + b"}}"


BAD_IDS = {"object": {"a": 1}, "array": [1], "null": None, "boolean": True, "fraction": 1.5, "exponent": 1e3}
GARBAGE_VERSIONS = ["garbage", "2099-01-01", "", "1.0", "2025-11-25; drop table"]

PROBES: list[Probe] = [
    # -- bodies that are not JSON, or not UTF-8 ------------------------------------------
    *[
        Probe(f"{era}-{name}", post(body, headers), (400,), (PARSE_ERROR,))
        for era, headers in (("legacy", None), ("modern", modern()))
        for name, body in {
            "invalid-json": b"{not json",
            "truncated-json": b'{"jsonrpc":"2.0","id":1,"method":"tools/list"',
            "empty-body": b"",
            "whitespace-body": b" \r\n\t ",
            "nul-bytes": b"\x00\x00\x00",
            "invalid-utf8": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"\xff\xfe"}}',
            "two-objects": b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"jsonrpc":"2.0","id":2,"method":"x"}',
            "single-quotes": b"{'jsonrpc': '2.0', 'id': 1, 'method': 'tools/list'}",
        }.items()
    ],
    # NaN is a JSON extension both parsers take: a number, not a request.
    *[
        Probe(f"{era}-nan-body", post(b"NaN", headers), (400,), (PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS))
        for era, headers in (("legacy", None), ("modern", modern()))
    ],
    # -- content types -----------------------------------------------------------------------
    *[
        Probe(
            f"{era}-content-type-{name}",
            post(INITIALIZE if era == "legacy" else modern_request(), lambda ctx, h=headers: h),
            (400, 415),
        )
        for era, base in (("legacy", JSON_HEADERS), ("modern", modern_headers()))
        for name, headers in {
            "text-plain": {**base, "Content-Type": "text/plain"},
            "form": {**base, "Content-Type": "application/x-www-form-urlencoded"},
            "xml": {**base, "Content-Type": "application/xml"},
            "missing": {key: value for key, value in base.items() if key != "Content-Type"},
        }.items()
    ],
    # -- oversized bodies --------------------------------------------------------------------
    Probe("oversized-body", post(b'{"x":"' + b"a" * (MAX_BODY + 16) + b'"}'), (413,), (INVALID_REQUEST,)),
    Probe(
        "oversized-valid-request",
        post(modern_request(params={"_meta": MODERN_META, "x": "a" * (MAX_BODY + 1)}), modern()),
        (413,),
        (INVALID_REQUEST,),
    ),
    # -- JSON-RPC batches (arrays) -----------------------------------------------------------
    *[
        Probe(f"{era}-batch-{name}", post(body, headers), (400,), (INVALID_REQUEST, INVALID_PARAMS, PARSE_ERROR))
        for era, headers, request in (
            ("legacy", in_session(), {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            ("modern", modern(), modern_request()),
        )
        for name, body in {
            "one": [request],
            "two": [request, {**request, "id": 2}],
            "empty": [],
            "notification": [{"jsonrpc": "2.0", "method": "notifications/initialized"}],
        }.items()
    ],
    # -- envelopes that are JSON but not JSON-RPC requests ----------------------------------
    *[
        Probe(f"{era}-{name}", post(body, headers), (400,), (INVALID_REQUEST, INVALID_PARAMS))
        for era, headers in (("legacy", in_session()), ("modern", modern()))
        for name, body in {
            "no-jsonrpc-member": {"id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}},
            "jsonrpc-1.0": {"jsonrpc": "1.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}},
            "method-number": {"jsonrpc": "2.0", "id": 1, "method": 42, "params": {"_meta": MODERN_META}},
            "params-array": {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1, 2]},
            "params-string": {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": "x"},
            "params-number": {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": 5},
            "json-string": "tools/list",
            "json-number": 42,
            "json-null": None,
        }.items()
    ],
    # -- unknown methods ---------------------------------------------------------------------
    Probe(
        "legacy-unknown-method",
        post({"jsonrpc": "2.0", "id": 1, "method": "qdrant/drop-everything"}, in_session()),
        (200, 400, 404),
        (METHOD_NOT_FOUND,),
    ),
    Probe(
        "modern-unknown-method",
        post(modern_request(method="qdrant/drop-everything"), modern("qdrant/drop-everything")),
        (400, 404),
        (METHOD_NOT_FOUND,),
    ),
    Probe(
        "legacy-unknown-method-before-initialize",
        post({"jsonrpc": "2.0", "id": 1, "method": "qdrant/drop-everything"}),
        (400, 404),
        (INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS),
    ),
    # -- request ids of every wrong type, in both eras ------------------------------------
    *[
        Probe(
            f"{where}-id-{name}",
            post(body(value), headers),
            (400,),
            (INVALID_REQUEST,),
            ("id",),
        )
        for name, value in BAD_IDS.items()
        for where, headers, body in (
            ("legacy-initialize", None, lambda v: {**INITIALIZE, "id": v}),
            ("legacy-session", in_session(), lambda v: {"jsonrpc": "2.0", "id": v, "method": "tools/list"}),
            ("modern", modern(), lambda v: modern_request(request_id=v)),
            (
                "modern-tools-call",
                modern("tools/call", **{"Mcp-Name": "qdrant-list-collections"}),
                lambda v: modern_request(
                    request_id=v,
                    method="tools/call",
                    params={"name": "qdrant-list-collections", "arguments": {}, "_meta": MODERN_META},
                ),
            ),
        )
    ],
    # -- Mcp-Session-Id ----------------------------------------------------------------------
    *[
        Probe(
            f"session-id-{name}",
            post(
                {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                lambda ctx, v=value: [
                    *JSON_HEADERS.items(),
                    ("Mcp-Session-Id", v),
                    ("Mcp-Protocol-Version", LEGACY),
                ],
            ),
            (400, 404),
            (INVALID_REQUEST,),
        )
        for name, value in {
            "garbage": "garbage!!",
            "overlong-8k": "a" * 8192,
            "overlong-60k": "b" * 60_000,
            "empty": "",
            "latin1-bytes": "\xe9\xff".encode("latin-1"),
            "path-like": "../../etc/passwd",
            "uuid-unknown": "0b0e8f5c-1d64-4c1e-9a1e-6f3f0c1d2e3f",
        }.items()
    ],
    Probe(
        "session-id-garbage-get",
        lambda ctx: ("GET", {"Accept": "text/event-stream", "Mcp-Session-Id": "garbage"}, None),
        (400, 404),
        (INVALID_REQUEST,),
    ),
    Probe(
        "session-id-garbage-delete",
        lambda ctx: ("DELETE", {"Mcp-Session-Id": "garbage", "Mcp-Protocol-Version": LEGACY}, None),
        (400, 404),
        (INVALID_REQUEST,),
    ),
    # -- MCP-Protocol-Version ---------------------------------------------------------------
    *[
        Probe(
            f"{where}-protocol-version-{index}",
            post(body, lambda ctx, v=version, h=headers: {**h(ctx), "Mcp-Protocol-Version": v}),
            (400,),
            None,
            ("version",),
        )
        for index, version in enumerate(GARBAGE_VERSIONS)
        for where, headers, body in (
            ("legacy-session", in_session(), {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            ("modern", modern(), modern_request()),
        )
    ],
    Probe(
        "modern-envelope-version-unsupported",
        post(
            modern_request(params={"_meta": {**MODERN_META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}}),
            modern(**{"Mcp-Protocol-Version": "2099-01-01"}),
        ),
        (400,),
        None,
        ("version",),
    ),
    Probe("modern-method-header-mismatch", post(modern_request(), modern("tools/call")), (400,), None, ("method",)),
    Probe(
        "modern-name-header-mismatch",
        post(
            modern_request(method="tools/call", params={"name": "qdrant-find", "arguments": {}, "_meta": MODERN_META}),
            modern("tools/call", **{"Mcp-Name": "qdrant-delete"}),
        ),
        (400,),
        None,
        ("name",),
    ),
    Probe(
        "modern-no-envelope",
        post({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}, modern()),
        (400,),
        (INVALID_PARAMS, INVALID_REQUEST),
        ("_meta",),
    ),
    # -- Accept --------------------------------------------------------------------------
    *[
        Probe(
            f"{era}-accept-{name}",
            post(body, lambda ctx, h=headers, a=accept: {**h(ctx), "Accept": a}),
            (406,),
        )
        for era, headers, body in (
            ("legacy", lambda ctx: dict(JSON_HEADERS), INITIALIZE),
            ("modern", modern(), modern_request()),
        )
        for name, accept in {"html": "text/html", "sse-only": "text/event-stream", "image": "image/png"}.items()
    ],
    # -- other HTTP methods on the endpoint ------------------------------------------------
    *[
        Probe(f"method-{verb.lower()}", lambda ctx, v=verb: (v, {"Accept": ACCEPT}, None), (400, 404, 405, 406))
        for verb in ("GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE")
    ],
    Probe("method-put-with-body", lambda ctx: ("PUT", JSON_HEADERS, json.dumps(INITIALIZE).encode()), (405,)),
    Probe(
        "method-get-modern",
        lambda ctx: ("GET", {"Accept": "text/event-stream", "Mcp-Protocol-Version": MODERN}, None),
        (400, 404, 405),
    ),
    # -- JSON the parsers choke on ----------------------------------------------------------
    *[
        Probe(f"{era}-nested-{levels}", post(deep_request(levels, era == "modern"), headers), (400,), None)
        for era, headers in (("legacy", in_session()), ("modern", modern()))
        for levels in (5_000, 100_000)
    ],
    Probe("bare-array-nested-100000", post(deep(100_000)), (400,), None),
    Probe(
        "legacy-number-5000-digits",
        post(b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":' + b"9" * 5000 + b"}}", in_session()),
        (400,),
        (PARSE_ERROR, INVALID_PARAMS),
    ),
    Probe(
        "modern-number-5000-digits",
        post(
            b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":'
            + b"9" * 5000
            + f',"_meta":{json.dumps(MODERN_META)}}}}}'.encode(),
            modern(),
        ),
        (400,),
        (PARSE_ERROR, INVALID_PARAMS),
    ),
]


@pytest.fixture(scope="module")
def ctx(arbitrary_server: ServerProcess) -> Iterator[Context]:
    with httpx.Client(timeout=10) as client:
        session = LegacyEra(arbitrary_server.mcp_url, client)
        yield Context(arbitrary_server.mcp_url, session.headers("tools/list"))


@pytest.fixture(scope="module")
def log(arbitrary_server: ServerProcess) -> Iterator[LogWatch]:
    watch = LogWatch(arbitrary_server.log_path)
    yield watch
    time.sleep(0.5)  # what the last test's requests log late
    assert not watch.problems(), "the server logged an error or traceback after the module's last check"


def logged_late(log: LogWatch) -> list[str]:
    """Errors logged since the previous test's last look at the log: its requests' (the server wrote
    them after that look), reported here rather than lost."""
    return [f"server log, written after the previous test's check: {line}" for line in log.problems()]


def still_serving(server: ServerProcess, log: LogWatch) -> list[str]:
    """Both eras still answer, and the log holds no error or traceback since the last look."""
    problems = []
    with httpx.Client(timeout=10) as client:
        try:
            tools = ModernEra(server.mcp_url, client).list_tools()
            if not tools:
                problems.append("the 2026-era tools/list came back empty")
            LegacyEra(server.mcp_url, client).list_tools()
            if client.get(f"{server.base}/readyz").status_code != 200:
                problems.append("/readyz is not 200")
        except (AssertionError, httpx.HTTPError) as exc:
            problems.append(f"the server stopped serving: {exc!r}")
    time.sleep(0.05)  # let the lines of the request just answered reach the file
    problems += [f"server log: {line}" for line in log.problems()]
    return problems


@pytest.mark.parametrize("probe", PROBES, ids=[probe.id for probe in PROBES])
def test_malformed_request_gets_a_clear_4xx(
    arbitrary_server: ServerProcess, ctx: Context, log: LogWatch, probe: Probe
) -> None:
    problems = logged_late(log)
    method, headers, content = probe.build(ctx)
    response = httpx.request(method, ctx.url, headers=headers, content=content, timeout=30)
    if response.status_code >= 500 or response.status_code not in probe.statuses:
        problems.append(f"HTTP {response.status_code} (expected {probe.statuses}): {response.text[:500]}")
    body: Any = None
    if response.content and "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            problems.append(f"a JSON content type with a body that is not JSON: {response.text[:300]}")
    if probe.codes is not None:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or error.get("code") not in probe.codes or not error.get("message"):
            problems.append(f"expected a JSON-RPC error {probe.codes}: {response.text[:500]}")
    text = response.text.lower()
    problems += [
        f"the answer does not mention {word!r}: {response.text[:300]}" for word in probe.words if word not in text
    ]
    if "traceback" in text:
        problems.append(f"a traceback reached the client: {response.text[:300]}")
    problems += still_serving(arbitrary_server, log)
    assert not problems, f"{probe.id}:\n  " + "\n  ".join(problems)


def test_missing_accept_is_served_or_refused_cleanly(arbitrary_server: ServerProcess, log: LogWatch) -> None:
    """No Accept header at all: HTTP says the client takes anything; a JSON answer or a 406, never a 5xx."""
    late = logged_late(log)
    for headers, body in (
        ({"Content-Type": "application/json"}, INITIALIZE),
        (
            {"Content-Type": "application/json", "Mcp-Protocol-Version": MODERN, "Mcp-Method": "tools/list"},
            modern_request(),
        ),
    ):
        response = httpx.post(arbitrary_server.mcp_url, headers=headers, json=body, timeout=10)
        assert response.status_code in (200, 406), response.text
        if response.status_code == 200:
            message = response.json()
            assert message["jsonrpc"] == "2.0" and message["id"] == body["id"] and "result" in message
    assert not late + still_serving(arbitrary_server, log)


def _open_unfinished_body(port: int, declared: int = 10_000) -> socket.socket:
    """A POST whose headers promise `declared` bytes of body, of which only a few are sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {ACCEPT}\r\n"
        f"Content-Type: application/json\r\nMcp-Protocol-Version: {MODERN}\r\nMcp-Method: tools/list\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"jsonrpc":"2.0",')
    return sock


def test_a_body_that_never_finishes_does_not_hold_up_other_clients(
    arbitrary_server: ServerProcess, log: LogWatch
) -> None:
    """Twenty clients send headers and part of a body, then stall: everyone else is still served meanwhile.

    The stalled requests get nothing yet (the server waits up to its 30 s body deadline);
    when they hang up, the server drops them without an error."""
    late = logged_late(log)
    stalled = [_open_unfinished_body(arbitrary_server.port) for _ in range(20)]
    try:
        # Served while the stalled requests still wait for their bodies (checked below).
        with httpx.Client(timeout=10) as client:
            for _ in range(5):
                assert ModernEra(arbitrary_server.mcp_url, client).list_tools()
                reply = ModernEra(arbitrary_server.mcp_url, client).call("qdrant-list-collections", {})
                assert reply.status == 200 and not reply.is_tool_error, reply.describe()
        for sock in stalled:
            sock.settimeout(0.05)
            with pytest.raises(TimeoutError):
                sock.recv(1)  # no answer before the body is complete or its deadline passes
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.3)
    assert not late + still_serving(arbitrary_server, log)


def test_a_stalled_body_gets_408_at_the_deadline(start_server: Callable[..., ServerProcess]) -> None:
    """MCP_BODY_TIMEOUT (30 s by default) at 2 s: a body that stops coming is answered 408 with a JSON-RPC
    error once the deadline passes, not before, and the connection is closed; the server keeps serving."""
    server = start_server({"MCP_BODY_TIMEOUT": "2"})
    log = LogWatch(server.log_path)
    sock = _open_unfinished_body(server.port)
    try:
        sock.settimeout(1)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # half the deadline: nothing yet
        sock.settimeout(15)  # the deadline and then some, well before the default 30 s
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes the connection
            answer += chunk
    finally:
        sock.close()
    head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408"), answer
    message = json.loads(body[body.index("{") : body.rindex("}") + 1])  # the one chunk of a chunked body
    assert message["error"] == {"code": -32600, "message": "request body not received within 2 s"}
    assert not still_serving(server, log)


def test_headers_that_never_finish_do_not_hold_up_other_clients(arbitrary_server: ServerProcess, log: LogWatch) -> None:
    late = logged_late(log)
    stalled = []
    for _ in range(10):
        sock = socket.create_connection(("127.0.0.1", arbitrary_server.port), timeout=5)
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        stalled.append(sock)
    try:
        with httpx.Client(timeout=10) as client:
            assert ModernEra(arbitrary_server.mcp_url, client).list_tools()
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.3)
    assert not late + still_serving(arbitrary_server, log)
