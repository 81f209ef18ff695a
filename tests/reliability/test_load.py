"""Sustained load: 50 clients for 60 s mixing stores and finds, both protocol eras, over real HTTP.

Asserts 0 errors, every client served (stores and finds alike, none starved), RSS that stops
growing (< 10 % between the first and the last quarter), and no file descriptor, thread or
task leak once the clients are gone. How many calls that is, their p50/p99 and throughput are
printed and written to .cache/reliability/load.json, never asserted: speed is the benchmark's
(`python -m bench`). `RELIABILITY_LONG=1` runs the long variant (10 minutes).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from support import REPO, ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]
Start = Callable[..., ServerProcess]
LONG = os.environ.get("RELIABILITY_LONG") == "1"
SECONDS = 600 if LONG else 60
CLIENTS = 50
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
WORDS = [
    "memory",
    "server",
    "load",
    "test",
    "with",
    "words",
    "about",
    "towers",
    "plants",
    "bread",
    "markets",
    "rivers",
    "songs",
]


def process_stats(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


class LoadClient:
    """One client: a 2025-era session, or stateless 2026-era requests."""

    def __init__(self, server: ServerProcess, http: httpx.AsyncClient, number: int) -> None:
        self.server, self.http, self.number = server, http, number
        self.modern = number % 2 == 1
        self.session: str | None = None
        self.latencies: dict[str, list[float]] = {"qdrant-store": [], "qdrant-find": []}
        self.errors: list[str] = []
        self.calls = 0

    async def open(self) -> None:
        if self.modern:
            return
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}}
        response = await self.http.post(
            self.server.mcp_url,
            json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init},
            headers=HEADERS,
        )
        self.session = response.headers["mcp-session-id"]
        headers = {**HEADERS, "mcp-session-id": self.session, "mcp-protocol-version": "2025-11-25"}
        await self.http.post(
            self.server.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )

    async def close(self) -> None:
        if self.session:
            headers = {"mcp-session-id": self.session, "mcp-protocol-version": "2025-11-25"}
            await self.http.delete(self.server.mcp_url, headers=headers)

    async def call(self, tool: str, arguments: dict[str, Any]) -> None:
        self.calls += 1
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if self.modern:
            version = "2026-07-28"
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": version,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            headers = {**HEADERS, "mcp-protocol-version": version, "mcp-method": "tools/call", "mcp-name": tool}
        else:
            headers = {**HEADERS, "mcp-session-id": self.session or "", "mcp-protocol-version": "2025-11-25"}
        body = {"jsonrpc": "2.0", "id": self.calls, "method": "tools/call", "params": params}
        started = time.perf_counter()
        response = await self.http.post(self.server.mcp_url, json=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            self.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        result = response.json().get("result", {})
        if "error" in response.json() or result.get("isError"):
            self.errors.append(response.text[:300])
            return
        self.latencies[tool].append(elapsed)

    async def run(self, until: float) -> None:
        i = 0
        while time.monotonic() < until:
            i += 1
            words = " ".join(WORDS[(self.number + i + k) % len(WORDS)] for k in range(12))
            if i % 4 == 0:
                await self.call(
                    "qdrant-store",
                    {"information": f"client {self.number} note {i}: {words}", "collection_name": "load"},
                )
            else:
                await self.call("qdrant-find", {"query": words[:60], "collection_name": "load", "limit": 5})


def percentile(values: list[float], q: float) -> float | None:
    """In milliseconds; None for a tool no call of which was answered (the assertions below then name it)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 1)


async def test_fifty_clients_for_a_minute(start_server: Start) -> None:
    server = start_server({"MCP_MAX_SESSIONS": "256"})
    pid = server.process.pid
    # Idle connections are dropped by the client before the server's 5 s keep-alive closes them (no reuse race).
    limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2, keepalive_expiry=3)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        # Warm up (the collection exists, the first runs are paid) before the baseline is taken.
        warm = LoadClient(server, http, 0)
        await warm.open()
        await warm.call("qdrant-store", {"information": "warm-up note", "collection_name": "load"})
        await warm.close()
        before = process_stats(pid)
        before_tasks = httpx.get(server.base + "/readyz").json().get("tasks")
        clients = [LoadClient(server, http, n) for n in range(CLIENTS)]
        for client in clients:
            await client.open()
        samples: list[int] = []
        until = time.monotonic() + SECONDS

        async def sample() -> None:
            while time.monotonic() < until:
                samples.append(process_stats(pid)["rss_kib"])
                await anyio.sleep(1)

        started = time.monotonic()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sample)
            for client in clients:
                tasks.start_soon(client.run, until)
        duration = time.monotonic() - started
        for client in clients:
            await client.close()
    await anyio.sleep(1)
    after = process_stats(pid)
    after_tasks = httpx.get(server.base + "/readyz").json().get("tasks")
    errors = [error for client in clients for error in client.errors]
    calls = sum(client.calls for client in clients)
    latency = {tool: [v for c in clients for v in c.latencies[tool]] for tool in ("qdrant-store", "qdrant-find")}
    quarter = max(1, len(samples) // 4)
    first, last = statistics.mean(samples[:quarter]), statistics.mean(samples[-quarter:])
    report = {
        "clients": CLIENTS,
        "seconds": round(duration, 1),
        "calls": calls,
        "calls_per_s": round(calls / duration, 1),
        "errors": len(errors),
        **{f"{tool}_p50_ms": percentile(v, 0.5) for tool, v in latency.items()},
        **{f"{tool}_p99_ms": percentile(v, 0.99) for tool, v in latency.items()},
        "rss_first_quarter_mib": round(first / 1024, 1),
        "rss_last_quarter_mib": round(last / 1024, 1),
        "rss_growth_pct": round(100 * (last - first) / first, 1),
        "fds_before_after": [before["fds"], after["fds"]],
        "threads_before_after": [before["threads"], after["threads"]],
        "tasks_before_after": [before_tasks, after_tasks],
    }
    out = REPO / ".cache" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    print("load:", json.dumps(report))
    assert not errors, errors[:5]
    starved = [client.number for client in clients if not all(client.latencies.values())]
    assert not starved, f"clients without an answered store or find: {starved}"
    assert report["rss_growth_pct"] < 10
    assert after["fds"] <= before["fds"] + 2, (before, after)
    # Worker threads are pooled: at most one per embedding lane worker and one for the engine join the pool.
    assert after["threads"] <= before["threads"] + 4, (before, after)
    assert after_tasks is not None and before_tasks is not None and after_tasks <= before_tasks + 2
    assert "Traceback" not in server.log()
