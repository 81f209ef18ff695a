"""Stdio's early `initialize` answer changes nothing a client sees: whatever the first bytes.

The server reads the client's first line before the MCP SDK loads and may answer it at once
(transport/stdio.py, transport/handshake.py). Each case here sends the same bytes, in the
same pieces, to the real server and to the SDK's own stdio loop serving the same
application (`MCPServer.run_stdio_async`, the server as it was without the early answer), and
the two must answer alike: a first line that is not `initialize`, a notification, a batch,
an `initialize` split across writes or followed by more on the same write, CRLF, a BOM,
fields the SDK reads but refuses, and stdin closed early. A case ends with a `ping` whose
answer says everything before it was read; then stdin closes and the rest is read to EOF.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mcp_types import InitializeRequest, jsonrpc_message_adapter

from qdrant_mcp_memory.transport.handshake import early_answer

ENV = {**os.environ, "QDRANT_URL": ":memory:", "LOG_FORMAT": "json"}
OURS = [sys.executable, "-m", "qdrant_mcp_memory", "--transport", "stdio"]
SDK_ALONE = [
    sys.executable,
    "-c",
    "import anyio\n"
    "from qdrant_mcp_memory.app import Application\n"
    "from qdrant_mcp_memory.settings import Settings\n"
    "from qdrant_mcp_memory.telemetry import Telemetry\n"
    "from qdrant_mcp_memory.telemetry.providers import Providers\n"
    "anyio.run(Application(Settings(), Telemetry(Providers())).mcp.run_stdio_async)\n",
]
SENTINEL = "last"
ANSWER_LIMIT_S = 120.0  # a spawn on a loaded 2-core machine


def initialize(version: str = "2025-06-18", request_id: Any = 1, **params: Any) -> dict[str, Any]:
    fields = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": {**fields, **params}}


def line(message: object) -> bytes:
    return json.dumps(message).encode() + b"\n"


EVERY_FIELD = initialize(
    "2025-11-25",
    request_id="init",
    capabilities={
        "roots": {"listChanged": True},
        "sampling": {"context": {}, "tools": {}},
        "elicitation": {"form": {}, "url": {}},
        "tasks": {"list": {}, "requests": {"sampling": {"createMessage": {}}}},
        "experimental": {"x": {"y": 1}},
        "somethingNew": 3,
    },
    clientInfo={"name": "c", "version": "1", "title": "C", "websiteUrl": "https://c.example", "other": 1},
    _meta={"progressToken": 4},
)


INITIALIZED = line({"jsonrpc": "2.0", "method": "notifications/initialized"})
PING = line({"jsonrpc": "2.0", "id": SENTINEL, "method": "ping"})
TOOLS = line({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})


def converse(command: list[str], pieces: list[bytes], cwd: Path, sentinel: bool) -> tuple[list[Any], int]:
    """Write `pieces` (a pause between them), read up to the sentinel's answer, close stdin; every
    answer written (sorted: concurrent requests may be answered in either order) and the exit code."""
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, cwd=cwd
    ) as server:
        assert server.stdin and server.stdout
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(0.3)
            server.stdin.write(piece)
            server.stdin.flush()
        answers = []
        while sentinel:
            text = server.stdout.readline()
            assert text, f"{command[1]} ended before answering the sentinel; answers so far: {answers}"
            answers.append(json.loads(text))
            sentinel = answers[-1].get("id") != SENTINEL
        server.stdin.close()
        answers += [json.loads(text) for text in server.stdout.read().splitlines()]
        code = server.wait(ANSWER_LIMIT_S)
    return sorted(answers, key=json.dumps), code


# Left to the SDK (early_answer gives None): each is safe as long as the SDK gets the line
# as it would have read it, which the cases below hold.
LEFT_TO_THE_SDK = {
    "a carriage return inside": line(initialize()).replace(b'"method"', b'\r"method"'),
    "a capability of the wrong shape": line(initialize(capabilities={"roots": {"listChanged": "maybe"}})),
    "a capability the SDK would coerce": line(initialize(capabilities={"roots": {"listChanged": "yes"}})),
    "a snake_case field": line(initialize(capabilities={"roots": {"list_changed": True}})),
    "a snake_case params field": line({**initialize(), "params": {"protocol_version": "2025-06-18"}}),
    "icons": line(initialize(clientInfo={"name": "c", "version": "0", "icons": [{"src": "data:,"}]})),
    "a revision the SDK does not speak": line(initialize("2099-01-01")),
    "an id that is true": line(initialize(request_id=True)),
    "no id": line(initialize(request_id=None)),
    "a client without a version": line(initialize(clientInfo={"name": "no version"})),
    "capabilities null": line(initialize(capabilities=None)),
    "another method": line({**initialize(), "method": "ping"}),
    "JSON-RPC 1.0": line({**initialize(), "jsonrpc": "1.0"}),
    "not JSON": b"not json\n",
    "an id that is a float": line(initialize(request_id=1.5)),
    "NaN": line(initialize(_meta={"x": float("nan")})),
    "a repeated key": line(initialize())[:-2] + b', "id": 2}\n',
    "a lone surrogate": line(initialize()).replace(b'"test"', b'"\\ud800"'),
    "deep nesting": line(initialize(capabilities={"experimental": {"x": {"y": "[" * 100_000}}})).replace(
        b'"' + b"[" * 100_000 + b'"', b"[" * 100_000 + b"]" * 100_000
    ),
    "invalid UTF-8": line(initialize()).replace(b'"test"', b'"\xff"'),
    "extra top-level field": line({**initialize(), "extra": 1}),
}
CASES = {
    "ping before initialize": [PING],
    "a notification first": [INITIALIZED + line(initialize()) + INITIALIZED + PING],
    "a batch first": [line([initialize()]) + line(initialize()) + INITIALIZED + PING],
    "initialize split across writes, more on the last": [
        line(initialize())[:40],
        line(initialize())[40:] + INITIALIZED + TOOLS + PING,
    ],
    "CRLF": [(line(initialize()) + INITIALIZED + PING).replace(b"\n", b"\r\n")],
    # The SDK would not answer these as the early check once did (or at all):
    "a BOM": [b"\xef\xbb\xbf" + line(initialize()) + INITIALIZED + PING],
    "a carriage return inside": [LEFT_TO_THE_SDK["a carriage return inside"] + INITIALIZED + TOOLS + PING],
    "a capability of the wrong shape": [LEFT_TO_THE_SDK["a capability of the wrong shape"] + TOOLS + PING],
    "a 2025-11-25 client with more fields": [line(EVERY_FIELD) + INITIALIZED + TOOLS + PING],
}
CLOSED_EARLY = {
    "half an initialize": [line(initialize())[:40]],
    "an initialize without its newline": [line(initialize())[:-1]],
}


def both(pieces: list[bytes], tmp_path: Path, sentinel: bool) -> tuple[tuple[list[Any], int], tuple[list[Any], int]]:
    with ThreadPoolExecutor(2) as pool:  # the two spawns overlap: the case takes one spawn's time
        ours = pool.submit(converse, OURS, pieces, tmp_path, sentinel)
        sdk = pool.submit(converse, SDK_ALONE, pieces, tmp_path, sentinel)
        return ours.result(), sdk.result()


@pytest.mark.parametrize("pieces", CASES.values(), ids=CASES.keys())
def test_the_server_answers_as_the_sdk_alone_does(pieces: list[bytes], tmp_path: Path) -> None:
    ours, sdk = both(pieces, tmp_path, sentinel=True)
    assert ours == sdk


@pytest.mark.parametrize("pieces", CLOSED_EARLY.values(), ids=CLOSED_EARLY.keys())
def test_stdin_closed_early_ends_the_server_as_it_ends_the_sdk(pieces: list[bytes], tmp_path: Path) -> None:
    (ours, ours_code), (sdk, sdk_code) = both(pieces, tmp_path, sentinel=False)
    assert ours_code == sdk_code == 0
    assert ours == sdk


@pytest.mark.parametrize("first", LEFT_TO_THE_SDK.values(), ids=LEFT_TO_THE_SDK.keys())
def test_a_line_the_sdk_might_answer_otherwise_is_left_to_it(first: bytes) -> None:
    assert early_answer(first) is None


@pytest.mark.parametrize("message", [initialize(), initialize(request_id="a"), EVERY_FIELD])
def test_a_line_answered_early_is_one_the_sdk_accepts(message: dict[str, Any]) -> None:
    """The early check is narrower than the SDK's models: what it answers, they validate."""
    assert early_answer(line(message)) is not None
    parsed = jsonrpc_message_adapter.validate_json(line(message).decode(), by_name=False)
    InitializeRequest.model_validate(parsed.model_dump(by_alias=True, exclude_unset=True))
