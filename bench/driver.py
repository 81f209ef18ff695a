"""Driving a server through a real MCP client, and measuring what each batch of calls cost.

All clients run in the benchmark process under asyncio, one session each. `run_calls`
opens the sessions before its clock starts; the clients then pull calls from one shared
list until it is empty. Besides latency and throughput it reads /proc before and after:
the server tree's CPU, its main thread's (the event loop), the client process's, and what
everything else on the machine used meanwhile (other people's builds: the noise).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from . import procfs
from .errors import BenchError
from .serverproc import ServerProcess, port_open
from .stats import latency_summary
from .workload import Operation

LEGACY = "legacy"
# Makes a client session for (url, protocol era, read timeout in seconds).
Connect = Callable[[str, str, float], Any]


def load_client_sdk() -> None:
    """Import the `mcp` client SDK now (about 1 s of CPU): imported lazily, its import would land
    inside the first readiness measurement and stall every poller on this event loop meanwhile."""
    import mcp.client  # noqa: F401  # imported for its import cost, now rather than later


def sdk_client(url: str, mode: str, read_timeout_seconds: float) -> Any:
    from mcp.client import Client

    return Client(url, mode=mode, read_timeout_seconds=read_timeout_seconds)


def raw_client(url: str, mode: str, read_timeout_seconds: float) -> Any:
    from .rawclient import RawClient

    return RawClient(url, mode, read_timeout_seconds)


def connector(kind: str) -> Connect:
    """The client for `--client sdk|raw`."""
    return raw_client if kind == "raw" else sdk_client


def error_text(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(error_text(inner) for inner in exc.exceptions[:3])
    return f"{type(exc).__name__}: {exc}"[:300]


def result_text(result: Any) -> str:
    return "\n".join(text for item in getattr(result, "content", None) or [] if (text := getattr(item, "text", None)))


def found_something(text: str) -> bool:
    """Whether a qdrant-find answer lists hits: `<entry>` blocks (official) or `- [score]` lines (ours)."""
    return "<entry>" in text or "\n- [" in text


@dataclass
class CallOutcome:
    seconds: float
    ok: bool
    text: str
    structured: dict[str, Any] | None = None  # the tool's structured result, when it gave one


async def call(client: Any, tool: str, arguments: dict[str, Any] | None, limit_s: float = 60.0) -> CallOutcome:
    """One tool call (or tools/list); failures and isError results come back as ok=False."""
    started = time.perf_counter()
    structured = None
    try:
        if tool == "tools/list":
            listed = await client.list_tools(cache_mode="bypass")
            ok, text = bool(listed.tools), "" if listed.tools else "empty tools/list"
        else:
            result = await client.call_tool(tool, arguments or {}, read_timeout_seconds=limit_s)
            text = result_text(result)
            structured = getattr(result, "structured_content", None)
            ok = not getattr(result, "is_error", False)
            if not ok:
                text = "isError: " + text[:200]
    except Exception as exc:
        ok, text = False, error_text(exc)
    return CallOutcome(time.perf_counter() - started, ok, text, structured)


async def run_calls(
    server: ServerProcess,
    mode: str,
    phase: str,
    clients: int,
    calls: list[Operation],
    *,
    connect: Connect = sdk_client,
    call_timeout: float = 60.0,
    phase_timeout: float = 600.0,
    per_call: int = 1,
) -> dict[str, Any]:
    """Make `calls` over `clients` concurrent sessions; latency, throughput (`per_call` docs each), CPU, RSS."""
    durations: list[float] = []
    errors = empty = 0
    samples: list[str] = []
    pending = iter(calls)

    async def worker(client: Any) -> None:
        nonlocal errors, empty
        for tool, arguments in pending:
            outcome = await call(client, tool, arguments, call_timeout)
            durations.append(outcome.seconds)
            if not outcome.ok:
                errors += 1
                if len(samples) < 5:
                    samples.append(outcome.text)
            elif tool == "qdrant-find" and not found_something(outcome.text):
                empty += 1

    result: dict[str, Any] = {"phase": phase, "mode": mode, "clients": clients, "n": len(calls) * per_call}
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        try:
            for _ in range(clients):
                client = connect(server.mcp_url, mode, call_timeout)
                sessions.append(await asyncio.wait_for(stack.enter_async_context(client), 30))
        except Exception as exc:
            failed = {"errors": len(calls) * per_call, "error_samples": [f"connect: {error_text(exc)}"], "wall_s": 0.0}
            return {**result, **failed, "connect_failed": True}
        pid = server.pid
        server_cpu, main_cpu, machine = procfs.tree_cpu_s(pid), procfs.thread_cpu_s(pid, pid), procfs.machine_busy_s()
        client_cpu = time.process_time()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(worker(s) for s in sessions)), phase_timeout)
        except TimeoutError:
            missing = len(calls) - len(durations)
            errors += missing
            samples.append(f"phase timeout after {phase_timeout} s ({missing} calls not done)")
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = procfs.tree_cpu_s(pid) - server_cpu
        main_cpu = procfs.thread_cpu_s(pid, pid) - main_cpu
        machine = procfs.machine_busy_s() - machine
        rss_kib, _ = procfs.tree_rss_kib(pid)
    units = len(calls) * per_call

    def share(seconds: float) -> float | None:
        return round(seconds / wall, 3) if wall > 0 else None

    def per_unit(seconds: float) -> float | None:
        return round(seconds * 1000 / units, 3) if units else None

    latency = latency_summary(durations)
    del latency["n"]
    result.update(
        {
            "errors": errors * per_call,
            "error_samples": samples,
            "empty_results": empty,
            "wall_s": round(wall, 4),
            "throughput": round(units / wall, 2) if wall > 0 else None,
            **latency,
            "client_cpu_util": share(client_cpu),
            "client_cpu_ms_per_op": per_unit(client_cpu),
            "server_cpu_util": share(server_cpu),
            "server_cpu_ms_per_op": per_unit(server_cpu),
            # the main thread runs the event loop: HTTP, the MCP SDK, JSON, anything not offloaded
            "server_main_thread_util": share(main_cpu),
            "server_main_thread_ms_per_op": per_unit(main_cpu),
            # cores busy with everything else on the machine (other people's builds and tests)
            "other_cpu_util": round(max(0.0, machine - server_cpu - client_cpu) / wall, 2) if wall > 0 else None,
            "server_rss_mb": round(rss_kib / 1024, 1),
        }
    )
    return result


async def wait_ready(server: ServerProcess, limit_s: float, first_find: str | None = None) -> dict[str, Any]:
    """Seconds from spawn to: port open, first answered tools/list, /readyz 200 (if the server has it),
    and with `first_find`, the first qdrant-find for it that succeeds."""
    deadline = server.started + limit_s
    times: dict[str, Any] = {}
    while not port_open(server.port):
        _check_alive(server)
        if time.perf_counter() > deadline:
            raise BenchError(f"{server.name} did not listen within {limit_s} s:\n{server.log_tail()}")
        await asyncio.sleep(0.005)
    times["port_open_s"] = _since_spawn(server)
    jobs = [
        _first_success(server, "tools/list", None, deadline=deadline, times=times, key="ready_s"),
        _readyz(server, deadline, times),
    ]
    if first_find is not None:
        find = {"query": first_find}
        jobs.append(_first_success(server, "qdrant-find", find, deadline=deadline, times=times, key="first_find_s"))
    await asyncio.gather(*jobs)
    return times


def _since_spawn(server: ServerProcess) -> float:
    return round(time.perf_counter() - server.started, 3)


def _check_alive(server: ServerProcess) -> None:
    if not server.alive():
        raise BenchError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")


async def _readyz(server: ServerProcess, deadline: float, times: dict[str, Any]) -> None:
    if not server.ready_path:
        return
    last: Any = None
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.perf_counter() < deadline:
            try:
                response = await http.get(server.base + server.ready_path)
                last = response.status_code
                if response.status_code == 200:
                    times["readyz_s"] = _since_spawn(server)
                    return
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.01)
    times["readyz_s"] = None
    times["readyz_last"] = last


async def _first_success(
    server: ServerProcess,
    tool: str,
    arguments: dict[str, Any] | None,
    *,
    deadline: float,
    times: dict[str, Any],
    key: str,
) -> None:
    """Retry `tool` (new sessions while the server cannot take one) until it succeeds; record when."""
    last = None
    while time.perf_counter() < deadline:
        _check_alive(server)
        try:
            async with sdk_client(server.mcp_url, LEGACY, 30) as client:
                while time.perf_counter() < deadline:
                    outcome = await call(client, tool, arguments, 30)
                    if outcome.ok:
                        times[key] = _since_spawn(server)
                        if tool == "tools/list":
                            listed = await client.list_tools(cache_mode="bypass")
                            times["tools"] = sorted(t.name for t in listed.tools)
                        return
                    last = outcome.text
                    await asyncio.sleep(0.01)
        except Exception as exc:  # not up yet: try again
            last = error_text(exc)
            await asyncio.sleep(0.01)
    raise BenchError(f"{server.name}: no successful {tool} in time ({last}):\n{server.log_tail()}")
