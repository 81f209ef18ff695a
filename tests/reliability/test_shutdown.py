"""SIGTERM as Docker and Kubernetes send it: exit 0 within 10 s whatever is open, and nothing acknowledged lost."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client import Client
from otlp import Receiver

from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
# Docker's default grace period: after it the container is killed.
GRACE_S = 10.0


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


async def stop_under(server: ServerProcess, client: Client) -> tuple[int, float] | None:
    """SIGTERM while `client` holds its stream open; the client's own teardown then fails, as it should."""
    outcome = None
    with contextlib.suppress(Exception):
        async with client:
            await client.list_tools()
            outcome = await anyio.to_thread.run_sync(terminate, server)
    return outcome


async def test_an_idle_event_stream_does_not_hold_up_the_exit(start_server: Start) -> None:
    server = start_server()
    # A 2025-era session with its standalone GET stream open (the SDK client opens it).
    outcome = await stop_under(server, Client(server.mcp_url, mode="legacy"))
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
    outcome = await stop_under(server, Client(sse_client(server.base + "/sse"), mode="legacy"))
    check_exit(server, outcome, "SSE transport stream")


async def test_under_load_calls_in_flight_finish_new_ones_are_refused_and_nothing_acknowledged_is_lost(
    start_server: Start, receiver: Receiver, tmp_path: Path
) -> None:
    env = {
        "QDRANT_URL": None,
        "QDRANT_LOCAL_PATH": str(tmp_path / "data"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",  # only the final flush at shutdown exports metrics
    }
    server = start_server(env)
    acknowledged: dict[str, str] = {}  # id -> text
    refused: list[str] = []

    async def writer(worker: int) -> None:
        # The server goes away under these clients: a call fails (not acknowledged), and closing the session
        # afterwards can fail too (its DELETE finds nobody listening). Neither is the server's business.
        try:
            async with Client(server.mcp_url, mode="legacy") as client:
                for i in range(10_000):
                    text = f"worker {worker} note {i}: " + "some words to embed " * 8
                    result = await client.call_tool("qdrant-store", {"information": text, "collection_name": "load"})
                    if result.is_error:
                        refused.append(result.content[0].text)
                        return
                    acknowledged[result.structured_content["id"]] = text
        except Exception as exc:
            refused.append(type(exc).__name__)

    async with anyio.create_task_group() as tasks:
        for worker in range(8):
            tasks.start_soon(writer, worker)
        await anyio.sleep(4)
        assert len(acknowledged) > 10
        outcome = await anyio.to_thread.run_sync(terminate, server)
    check_exit(server, outcome, "8 clients storing")
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
    print("shutdown under load:", json.dumps({"acknowledged": len(acknowledged), "refused": len(refused)}))
