"""SIGTERM as Docker and Kubernetes send it: exit 0 within 10 s whatever is open, and nothing acknowledged lost."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR
from otlp import Receiver
from reliability_support import MODERN, MODERN_META

from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
# Docker's default grace period: after it the container is killed.
GRACE_S = 10.0
# The server's answer to a request that arrives while it stops (transport/streams.py): status, Retry-After, body.
REFUSAL = (503, "1", '{"error": "shutting down", "detail": "the server is stopping; retry on another instance"}')
# What the SDK 2.3.0 client raises for an HTTP error whose body is not a JSON-RPC message: its own words.
SDK_HTTP_ERROR = (INTERNAL_ERROR, "Server returned an error response")


class Recorder:
    """One SDK client's HTTP traffic as the server answered it: when its standalone event stream
    opened, and every error response (method, status, Retry-After, body)."""

    def __init__(self) -> None:
        self.stream_open = anyio.Event()
        self.errors: list[tuple[str, int, str | None, str]] = []

    @contextlib.asynccontextmanager
    async def client(self, url: str) -> AsyncIterator[Client]:
        """A 2025-era SDK client over an httpx2 client of the SDK's own timeouts that reports to this recorder."""
        hooks = {"response": [self._seen]}
        async with (
            httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300), event_hooks=hooks) as http,
            Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
        ):
            yield client

    async def _seen(self, response: httpx2.Response) -> None:
        kind = response.headers.get("content-type", "")
        if response.request.method == "GET" and response.status_code == 200 and kind.startswith("text/event-stream"):
            self.stream_open.set()
        if response.status_code >= 400:
            await response.aread()
            retry = response.headers.get("retry-after")
            self.errors.append((response.request.method, response.status_code, retry, response.text))

    def other_errors(self) -> list[tuple[str, int, str | None, str]]:
        """The error responses other than the server's shutdown refusal."""
        return [error for error in self.errors if error[1:] != REFUSAL]


def terminate(server: ServerProcess) -> tuple[int, float]:
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=GRACE_S + 5)
    return code, time.monotonic() - started


def check_exit(server: ServerProcess, outcome: tuple[int, float] | None, case: str) -> None:
    assert outcome is not None, "the server was not stopped"
    code, elapsed = outcome
    print(f"shutdown {case}: {elapsed:.2f} s")
    assert code == 0, server.log()
    assert elapsed < GRACE_S, f"{case}: exit took {elapsed:.1f} s"
    errors = [line for line in server.log().splitlines() if '"error"' in line or "Traceback" in line]
    assert not errors, errors


async def stop_under(
    server: ServerProcess,
    connection: contextlib.AbstractAsyncContextManager[Client],
    stream_open: anyio.Event | None = None,
) -> tuple[int, float] | None:
    """SIGTERM while the client holds its stream open (once `stream_open` is set, when given); the client's
    own teardown then fails, as it should. None when the stream did not open within 10 s."""
    outcome = None
    with contextlib.suppress(Exception):
        async with connection as client:
            await client.list_tools()
            if stream_open is not None:
                with anyio.move_on_after(10):
                    await stream_open.wait()
            if stream_open is None or stream_open.is_set():
                outcome = await anyio.to_thread.run_sync(terminate, server)
    return outcome


async def test_an_idle_event_stream_does_not_hold_up_the_exit(start_server: Start) -> None:
    server = start_server()
    # A 2025-era session with its standalone GET stream open (the SDK client opens it after the handshake).
    recorder = Recorder()
    outcome = await stop_under(server, recorder.client(server.mcp_url), recorder.stream_open)
    assert recorder.stream_open.is_set(), "the client's GET event stream never opened"
    check_exit(server, outcome, "idle GET event stream")


async def test_a_subscriptions_listen_stream_does_not_hold_up_the_exit(start_server: Start) -> None:
    server = start_server()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "subscriptions/listen",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
            "notifications": {"toolsListChanged": True},
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "subscriptions/listen",
    }
    async with httpx.AsyncClient(timeout=30) as http, anyio.create_task_group() as tasks:
        opened = anyio.Event()

        async def listen() -> None:
            async with http.stream("POST", server.mcp_url, json=body, headers=headers) as response:
                assert response.status_code == 200, await response.aread()
                opened.set()
                async for _ in response.aiter_bytes():
                    pass

        tasks.start_soon(listen)
        with anyio.fail_after(10):
            await opened.wait()
        outcome = await anyio.to_thread.run_sync(terminate, server)
    check_exit(server, outcome, "2026 subscriptions/listen stream")


async def test_an_sse_transport_stream_does_not_hold_up_the_exit(start_server: Start) -> None:
    from mcp.client.sse import sse_client

    server = start_server(args=("--transport", "sse"))
    # The SSE transport answers every call on its stream: it is open once list_tools is answered.
    outcome = await stop_under(server, Client(sse_client(server.base + "/sse"), mode="legacy"))
    check_exit(server, outcome, "SSE transport stream")


class SlowCall:
    """A stateless (2026-era) qdrant-store whose client is slow to send the body: in flight from its headers on."""

    def __init__(self, server: ServerProcess, text: str) -> None:
        arguments = {"information": text, "collection_name": "load"}
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "qdrant-store", "arguments": arguments, "_meta": MODERN_META},
        }
        self.body = json.dumps(body).encode()
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.connection.putrequest("POST", server.mcp_path)
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Content-Length": str(len(self.body)),
            "Mcp-Protocol-Version": MODERN,
            "Mcp-Method": "tools/call",
            "Mcp-Name": "qdrant-store",
        }
        for name, value in headers.items():
            self.connection.putheader(name, value)
        self.connection.endheaders(self.body[:16])

    def finish(self) -> tuple[int, dict[str, Any]]:
        """Send the rest of the body; the answer's status and JSON-RPC message."""
        self.connection.send(self.body[16:])
        response = self.connection.getresponse()
        answer = response.status, json.loads(response.read())
        self.connection.close()
        return answer


async def test_under_load_calls_in_flight_finish_new_ones_are_refused_and_nothing_acknowledged_is_lost(
    start_server: Start, receiver: Receiver, tmp_path: Path
) -> None:
    """Eight SDK clients store in a loop while a ninth is slow to send its call's body. On SIGTERM the server
    waits for that call in flight, so every writer's next call meets the stop: each is refused with the
    server's own refusal (503, Retry-After: 1, its body), which the SDK 2.3.0 client raises as its generic
    "Server returned an error response"; closing their sessions then works. The slow call, its body sent at
    last, is answered and acknowledged, the exit is clean, and every acknowledged write is there after a restart."""
    env = {
        "QDRANT_URL": None,
        "QDRANT_LOCAL_PATH": str(tmp_path / "data"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",  # only the final flush at shutdown exports metrics
        "MCP_BODY_TIMEOUT": "300",  # the slow call's body takes as long as the test needs
    }
    server = start_server(env)
    slow_text = "the slow client's note, stored while the server stops"
    slow = SlowCall(server, slow_text)
    with anyio.fail_after(30):
        while httpx.get(server.base + "/readyz").json()["calls_in_flight"] != 1:
            await anyio.sleep(0.05)
    acknowledged: dict[str, str] = {}  # id -> text
    ended: dict[int, BaseException | str] = {}  # how each writer's storing ended: what its call raised, or returned
    close_failures: dict[int, BaseException] = {}
    recorders = [Recorder() for _ in range(8)]

    async def writer(worker: int) -> None:
        closing = False
        try:
            async with recorders[worker].client(server.mcp_url) as client:
                for i in itertools.count():
                    text = f"worker {worker} note {i}: " + "some words to embed " * 8
                    try:
                        result = await client.call_tool(
                            "qdrant-store", {"information": text, "collection_name": "load"}
                        )
                    except MCPError as exc:
                        ended[worker], closing = exc, True
                        return
                    if result.is_error:
                        ended[worker], closing = f"tool error: {result.content[0].text}", True
                        return
                    acknowledged[result.structured_content["id"]] = text
        except Exception as exc:  # the SDK's transport raises at the `async with`'s exit, whichever request failed
            if closing:
                close_failures[worker] = exc
            else:
                ended[worker] = exc

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tasks:
            for worker in range(8):
                tasks.start_soon(writer, worker)
            while len(acknowledged) < 10:
                await anyio.sleep(0.05)
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
        # Every writer is done (refused, session closed); the slow call is still in flight.
        slow_status, slow_answer = await anyio.to_thread.run_sync(slow.finish)
        code = await anyio.to_thread.run_sync(server.process.wait)
    check_exit(server, (code, time.monotonic() - stopped_at), "8 clients storing, one slow call in flight")
    # Each writer's storing ended on the server's shutdown refusal, during a call: nothing else.
    assert sorted(ended) == list(range(8)), ended
    for worker, end in ended.items():
        assert isinstance(end, MCPError) and (end.error.code, end.error.message) == SDK_HTTP_ERROR, (worker, end)
        posts = [error for error in recorders[worker].errors if error[0] == "POST"]
        assert len(posts) == 1 and not recorders[worker].other_errors(), (worker, recorders[worker].errors)
    assert not close_failures, close_failures
    # The call in flight finished: answered and acknowledged.
    assert slow_status == 200 and not slow_answer["result"]["isError"], slow_answer
    acknowledged[slow_answer["result"]["structuredContent"]["id"]] = slow_text
    # Telemetry was flushed on the way out: the last calls' spans and the metrics reached the receiver.
    assert receiver.received["/v1/traces"] and receiver.received["/v1/metrics"]
    # Every acknowledged write is there after a restart.
    server = start_server({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": None})
    async with Client(server.mcp_url) as client:
        info = await client.call_tool("qdrant-collection-info", {"collection_name": "load"})
        assert info.structured_content["points_count"] >= len(acknowledged)
        for point_id, text in list(acknowledged.items())[-25:]:
            found = await client.call_tool("qdrant-find", {"query": text, "collection_name": "load", "limit": 1})
            assert found.structured_content["hits"][0]["id"] == point_id
    print("shutdown under load:", json.dumps({"acknowledged": len(acknowledged), "refused": len(ended)}))
