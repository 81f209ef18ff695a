"""Limits a hostile or careless client meets: sessions, slow connections, start-up guards."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_REQUEST

from support import ServerProcess, free_port

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def initialize(server: ServerProcess, client: httpx.Client, name: str) -> str:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}},
    }
    response = client.post(server.mcp_url, json=body, headers=MCP_HEADERS)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


def ping(server: ServerProcess, client: httpx.Client, session: str) -> int:
    headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    return client.post(server.mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=headers).status_code


def readiness(server: ServerProcess) -> dict[str, object]:
    return dict(httpx.get(server.base + "/readyz").json())


def test_at_the_session_cap_the_least_recently_used_idle_session_makes_room(start_server: Start) -> None:
    """The SDK's own cap answers 503 to every new client until something expires; here nobody is locked out."""
    server = start_server({"MCP_MAX_SESSIONS": "5"})
    with httpx.Client(timeout=10) as client:
        sessions = [initialize(server, client, f"client-{i}") for i in range(5)]
        assert ping(server, client, sessions[0]) == 200  # session 0 is now the most recently used
        newcomers = [initialize(server, client, f"newcomer-{i}") for i in range(3)]
        assert readiness(server)["sessions_open"] == 5
        # The three idle the longest (1, 2, 3) made room; the one used recently survived.
        assert [ping(server, client, s) for s in sessions] == [200, 404, 404, 404, 200]
        assert all(ping(server, client, s) == 200 for s in newcomers)
    assert "Traceback" not in server.log()


def test_idle_sessions_expire(start_server: Start) -> None:
    server = start_server({"MCP_SESSION_IDLE_TIMEOUT": "1"})
    with httpx.Client(timeout=10) as client:
        session = initialize(server, client, "sleepy")
        assert readiness(server)["sessions_open"] == 1
        deadline = time.monotonic() + 10
        while readiness(server)["sessions_open"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ping(server, client, session) == 404
        assert readiness(server)["sessions_open"] == 0


async def test_a_client_whose_session_expired_is_told_so_and_a_new_session_serves_it(start_server: Start) -> None:
    """One SDK client left idle past MCP_SESSION_IDLE_TIMEOUT (its GET event stream open, as the SDK keeps
    it): its next call on the same client is refused with the server's 404 "Session not found". The SDK
    2.3.0 client raises that as an error rather than opening a new session itself (as the specification
    asks of clients), so a user opens a new one: it is served, with the data stored through the first."""
    server = start_server({"MCP_SESSION_IDLE_TIMEOUT": "1"})
    text = "A note stored before the session expired."
    find = {"query": "stored note", "collection_name": "sessions"}
    refusal = None
    # Outcomes are asserted after the client closed: a failure inside it would reach pytest in an ExceptionGroup.
    async with Client(server.mcp_url, mode="legacy") as client:
        stored = await client.call_tool("qdrant-store", {"information": text, "collection_name": "sessions"})
        with anyio.move_on_after(10):
            while readiness(server)["sessions_open"]:
                await anyio.sleep(0.2)
        expired = readiness(server)["sessions_open"] == 0
        if expired:
            try:
                await client.call_tool("qdrant-find", find)
            except MCPError as exc:
                refusal = (exc.error.code, exc.error.message)
    assert not stored.is_error, stored.content
    assert expired, "the idle session did not expire within 10 s"
    assert refusal == (INVALID_REQUEST, "Session not found")
    async with Client(server.mcp_url, mode="legacy") as client:
        found = await client.call_tool("qdrant-find", find)
    assert [hit["document"] for hit in found.structured_content["hits"]] == [text]


def test_connections_that_never_finish_their_headers_are_closed(start_server: Start) -> None:
    """Slowloris: 50 connections that send part of a request line and then nothing; MCP_HEADER_TIMEOUT
    (10 s by default) at 2 s closes them."""
    server = start_server({"MCP_HEADER_TIMEOUT": "2"})
    sockets = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sockets.append(sock)
    # Meanwhile an honest client is served.
    assert httpx.get(server.base + "/healthz", timeout=5).status_code == 200
    # Closed once the 2 s pass, well before the default 10 s would have.
    for sock in sockets:
        sock.settimeout(8)
        assert sock.recv(1) == b"", "the server should close the connection"  # EOF: closed by the server
        sock.close()


def test_a_busy_port_is_one_line_and_exit_1(start_server: Start, tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", "--transport", "streamable-http", "--port", str(port)],
        env={**_clean_env(), "QDRANT_URL": ":memory:", "LOG_FORMAT": "json"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    holder.close()
    assert result.returncode == 1
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"error"' in line]
    assert len(errors) == 1 and f"port {port} on 127.0.0.1 is in use" in errors[0]["message"]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_second_server_on_the_same_embedded_folder_is_one_line(start_server: Start, tmp_path: Path) -> None:
    folder = tmp_path / "shared-folder"
    first = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(folder)})
    result = subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", "--transport", "streamable-http", "--port", str(free_port())],
        env={**_clean_env(), "QDRANT_LOCAL_PATH": str(folder), "LOG_FORMAT": "json"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"error"' in line]
    assert len(errors) == 1 and "in use by another qdrant-mcp-memory process" in errors[0]["message"], result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert httpx.get(first.base + "/readyz").status_code == 200  # the first one is unharmed


def test_readiness_details_only_for_allowed_hosts(start_server: Start, tmp_path: Path) -> None:
    folder = tmp_path / "private-path"
    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(folder)})
    mine = httpx.get(server.base + "/readyz").json()
    assert mine["status"] == "ready" and str(folder) in mine["qdrant"]
    stranger = httpx.get(server.base + "/readyz", headers={"Host": "attacker.example"})
    assert stranger.status_code == 200 and stranger.json() == {"status": "ready"}


async def test_a_tool_name_cannot_forge_a_log_line(start_server: Start) -> None:
    # Metrics on (to a local Prometheus endpoint) turn on the per-call log line that names the tool.
    env = {
        "LOG_FORMAT": "text",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()),
    }
    server = start_server(env)
    forged = "bogus\n12:00:00 INFO    qdrant_mcp_memory: forged entry"
    async with Client(server.mcp_url, mode="legacy") as client:
        result = await client.call_tool(forged, {})
    assert result.is_error
    assert "tool call" in server.log() and "forged entry" in server.log()
    assert not any(line.startswith("12:00:00 INFO    qdrant_mcp_memory: forged") for line in server.log().splitlines())


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "MCP_", "OTEL_"))}
