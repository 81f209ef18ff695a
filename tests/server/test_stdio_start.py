"""Stdio's start: `initialize` is answered before the SDK loads, with the answer the SDK gives.

A desktop client spawns the server per conversation and waits for `initialize`; the server
answers it from identity.py before importing the MCP SDK (transport/stdio.py), then hands the
line to the SDK's session. What is held here: the order of the server's steps, that the
answer sent is the SDK's own (in-process, through the SDK's client), that the session goes
on as usual, and that a client of the 2026 era, which sends no `initialize`, is served
(test_stdio_handshake.py holds every other first line to the SDK's own answer).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from qdrant_mcp_memory.app import Application
from qdrant_mcp_memory.identity import HANDSHAKE_VERSIONS
from qdrant_mcp_memory.settings import Settings
from qdrant_mcp_memory.telemetry import Telemetry
from qdrant_mcp_memory.telemetry.providers import Providers
from qdrant_mcp_memory.transport.handshake import early_answer

CLIENT_INFO = {"name": "test", "version": "0"}


def initialize(version: str = "2025-06-18", request_id: Any = 1, **changes: Any) -> dict[str, Any]:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO, **changes}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def log_messages(stderr: str) -> list[str]:
    return [json.loads(text)["message"] for text in stderr.splitlines() if text.startswith("{")]


def test_initialize_is_answered_before_the_sdk_loads_and_the_session_goes_on(tmp_path: Path) -> None:
    env = {**os.environ, "QDRANT_URL": ":memory:", "LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "qdrant_mcp_memory", "--transport", "stdio"]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    ) as server:
        assert server.stdin and server.stdout and server.stderr

        def ask(message: dict[str, Any]) -> dict[str, Any]:
            server.stdin.write(line(message))
            server.stdin.flush()
            return dict(json.loads(server.stdout.readline()))

        answered = ask(initialize())
        server.stdin.write(line({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        store = {"name": "qdrant-store", "arguments": {"information": "stdio starts early", "collection_name": "s"}}
        stored = ask({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": store})
        find = {"name": "qdrant-find", "arguments": {"query": "when does stdio start", "collection_name": "s"}}
        found = ask({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": find})
        server.stdin.close()
        assert server.wait(60) == 0
        stderr = server.stderr.read().decode()
    assert answered == early_answer(line(initialize()))
    assert not stored["result"]["isError"]
    assert found["result"]["structuredContent"]["hits"][0]["document"] == "stdio starts early"
    steps = log_messages(stderr)
    # The answer is written before the SDK is imported (the application is built, then serves),
    # and so before the engine opens and the model loads.
    assert steps.index("initialize answered") < steps.index("serving on stdio") < steps.index("ready")
    assert "the SDK answered initialize differently from the answer sent early" not in steps


@pytest.mark.anyio
async def test_the_early_answer_is_the_sdks_own() -> None:
    application = Application(Settings(QDRANT_URL=":memory:"), Telemetry(Providers()))
    async with Client(application.mcp, mode="legacy") as client:
        negotiated = client.protocol_version
        sdk = {
            "capabilities": client.server_capabilities.model_dump(by_alias=True, exclude_unset=True),
            "instructions": client.instructions,
            "protocolVersion": negotiated,
            "serverInfo": client.server_info.model_dump(by_alias=True, exclude_unset=True)
            if client.server_info
            else None,
        }
    sent = early_answer(line(initialize(negotiated)))
    assert sent is not None
    assert sent["result"] == sdk
    # Every revision the SDK negotiates by handshake is answered early (the answer differs only in
    # the revision it echoes, which is what the SDK does for a revision it supports).
    assert HANDSHAKE_PROTOCOL_VERSIONS == HANDSHAKE_VERSIONS


@pytest.mark.anyio
async def test_a_client_of_the_2026_era_starts_without_initialize(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "qdrant_mcp_memory", "--transport", "stdio"],
        env={**os.environ, "QDRANT_URL": ":memory:"},
        cwd=str(tmp_path),
    )
    async with Client(params, mode="2026-07-28") as client:
        stored = await client.call_tool("qdrant-store", {"information": "no handshake", "collection_name": "m"})
        assert not stored.is_error
        found = await client.call_tool("qdrant-find", {"query": "handshake", "collection_name": "m"})
        assert found.structured_content and found.structured_content["hits"][0]["document"] == "no handshake"
