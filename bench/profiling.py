"""Where a server's time goes under 8-client finds: py-spy stacks, weighted by /proc CPU per thread.

`py-spy record --format raw --threads --subprocesses` runs against the server while the
clients work, and is stopped with SIGINT. py-spy samples are wall-clock (a runnable thread
waiting for a core still counts) and its idle detection does not hold on a loaded 2-core
machine, so samples whose leaf is a blocking wait are dropped, and the table to read first
weights the event loop's samples by the CPU its thread really used. py-spy sees Python
threads only: onnxruntime's native pool shows as the caller sitting in `Session.run`.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from . import provision
from .driver import LEGACY, Connect, run_calls
from .errors import BenchError
from .report import number
from .serverproc import ServerProcess
from .workload import Operation

# The first match walking a stack from the leaf towards the root decides the category. py-spy
# prints paths relative to site-packages or the stdlib ("anyio/streams/memory.py", "threading.py").
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("ONNX inference (onnxruntime Session.run)", ("onnxruntime/",)),
    ("tokenization (tokenizers)", ("tokenizers/",)),
    ("qdrant-client local mode (search/upsert, payload copies)", ("qdrant_client/local/",)),
    ("qdrant-client (async wrapper, conversions)", ("qdrant_client/",)),
    ("Qdrant Edge (qdrant_edge)", ("qdrant_edge/",)),
    ("fastembed (pre/post-processing, pooling, normalize)", ("fastembed/",)),
    ("pydantic validation/serialization", ("pydantic/", "pydantic_core/", "pydantic_settings/")),
    ("JSON encode/decode", ("json/", "orjson/")),
    ("OpenTelemetry", ("opentelemetry/",)),
    ("logging", ("logging/", "structlog/")),
    ("HTTP server (uvicorn/h11/httptools)", ("uvicorn/", "h11/", "httptools/")),
    ("ASGI/SSE (starlette, sse_starlette)", ("starlette/", "sse_starlette/")),
    ("MCP SDK (session, dispatch, streamable HTTP transport)", ("mcp/", "mcp_types/", "fastmcp/")),
    ("server code (tool handlers)", ("qdrant_mcp_memory/", "mcp_server_qdrant/")),
    ("anyio (task groups, streams, to_thread)", ("anyio/",)),
    ("asyncio event loop + socket I/O", ("asyncio/", "selectors.py")),
    ("thread pool / threading", ("concurrent/", "threading.py", "queue.py")),
]

# Leaves where a thread waits rather than works.
IDLE_LEAVES = (
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "Thread._wait_for_tstate_lock (threading.py",
    "Queue.get (queue.py",
    "_worker (concurrent/futures/thread.py",
    "EpollSelector.select (selectors.py",
    "select (selectors.py",
    "sleep (",
    "Semaphore.acquire (threading.py",
    "Lock.acquire (",
)
MAIN_THREAD = "MainThread (event loop)"


def _frame_file(frame: str) -> str:
    # a raw frame reads "function (path/to/file.py:123)"
    paren = frame.rfind(" (")
    return frame[paren + 2 : -1] if paren >= 0 and frame.endswith(")") else frame


def _short_frame(frame: str) -> str:
    paren = frame.rfind(" (")
    if paren < 0:
        return frame
    function, location = frame[:paren], frame[paren + 2 : -1]
    path = location.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.12/", "lib/python3.11/", "src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path})"


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        file = "/" + _frame_file(frame)
        for name, patterns in CATEGORIES:
            if any("/" + pattern in file for pattern in patterns):
                return name
    return "other: " + _short_frame(frames[-1])


def summarize(raw_path: Path, top: int = 10) -> dict[str, Any]:
    """Busy samples of a py-spy raw profile (`--threads`) by category, leaf function and thread."""
    categories: dict[str, int] = {}
    leaves: dict[str, int] = {}
    threads: dict[str, int] = {}
    thread_categories: dict[str, dict[str, int]] = {}
    total = busy = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        thread = "?"
        while frames and frames[0].startswith(("process ", "thread (")):
            if frames[0].startswith("thread ("):
                name = frames[0].split(":", 1)[1].strip().strip('"') if ":" in frames[0] else frames[0]
                thread = MAIN_THREAD if name == "MainThread" else name
            frames = frames[1:]
        if not frames or frames[-1].startswith(IDLE_LEAVES):
            continue
        busy += samples
        leaf = _short_frame(frames[-1])
        leaves[leaf] = leaves.get(leaf, 0) + samples
        category = _category(frames)
        categories[category] = categories.get(category, 0) + samples
        threads[thread] = threads.get(thread, 0) + samples
        per_thread = thread_categories.setdefault(thread, {})
        per_thread[category] = per_thread.get(category, 0) + samples

    def ranked(counts: dict[str, int], limit: int = top) -> list[dict[str, Any]]:
        ordered = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [{"item": k, "samples": v, "pct": round(100 * v / busy, 1) if busy else 0.0} for k, v in ordered]

    return {
        "total_samples": total,
        "busy_samples": busy,
        "idle_pct": round(100 * (total - busy) / total, 1) if total else 0.0,
        "categories": ranked(categories),
        "self": ranked(leaves),
        "threads": ranked(threads, 20),
        "per_thread_categories": {thread: ranked(counts, 12) for thread, counts in thread_categories.items()},
    }


async def profile(
    server: ServerProcess,
    calls: list[Operation],
    *,
    clients: int,
    out_dir: Path,
    rate: int,
    connect: Connect,
    phase: str | None = None,
) -> dict[str, Any]:
    """Run `calls` from `clients` sessions under py-spy; the phase's measurements plus the profile summary."""
    raw = out_dir / f"profile-{server.name}.txt"
    raw.unlink(missing_ok=True)
    command = [str(provision.pyspy()), "record", "--pid", str(server.pid), "--format", "raw", "--rate", str(rate)]
    command += ["--subprocesses", "--threads", "--output", str(raw)]
    spy_log = out_dir / f"profile-{server.name}.pyspy.log"
    with spy_log.open("wb") as log_file:
        spy = await asyncio.create_subprocess_exec(
            *command, stdout=log_file, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )
    try:
        await asyncio.sleep(1.0)  # let py-spy attach
        if spy.returncode is not None:
            raise BenchError(f"py-spy exited {spy.returncode}: {spy_log.read_text(errors='replace')[-2000:]}")
        label = phase or f"find_c{clients}_profiled"
        measured = await run_calls(server, LEGACY, label, clients, calls, connect=connect)
    finally:
        if spy.returncode is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            try:
                await asyncio.wait_for(spy.wait(), 30)
            except TimeoutError:
                spy.kill()
                await spy.wait()
    if not raw.exists():
        raise BenchError(f"py-spy wrote no profile: {spy_log.read_text(errors='replace')[-2000:]}")
    summary = summarize(raw)
    summary.update(raw_path=str(raw), phase=measured, command=" ".join(command), rate=rate)
    summary["cpu_weighted"] = _cpu_weighted(summary, measured)
    return summary


def _cpu_weighted(summary: dict[str, Any], measured: dict[str, Any], top: int = 10) -> list[dict[str, Any]]:
    """Cores per item: the main thread's /proc CPU split by its samples; all other threads are embedding."""
    total = measured.get("server_cpu_util") or 0.0
    main = measured.get("server_main_thread_util") or 0.0
    main_categories = summary["per_thread_categories"].get(MAIN_THREAD, [])
    main_samples = sum(c["samples"] for c in main_categories) or 1
    rows = [
        {
            "item": "embedding: worker thread + onnxruntime native threads (non-main threads)",
            "cores": round(max(0.0, total - main), 3),
        }
    ]
    rows += [
        {"item": f"event loop: {c['item']}", "cores": round(main * c["samples"] / main_samples, 3)}
        for c in main_categories
    ]
    rows.sort(key=lambda row: -row["cores"])
    for row in rows:
        row["pct"] = round(100 * row["cores"] / total, 1) if total else 0.0
    return rows[:top]


def markdown(name: str, profiled: dict[str, Any]) -> str:
    phase = profiled["phase"]
    lines = [
        f"#### Profile: {name} under {phase['clients']}-client {phase['phase']}",
        "",
        f"py-spy at {profiled.get('rate')} Hz: {profiled['total_samples']} samples over all Python threads, "
        f"{profiled['idle_pct']} % of them blocked waiting (dropped); shares below are of the "
        f"{profiled['busy_samples']} busy samples. Native threads of onnxruntime are invisible to py-spy: "
        "their time shows as the Python thread sitting in `Session.run`. During the profiled phase: "
        f"{number(phase.get('throughput'), 1)} calls/s (slowed by sampling), server CPU "
        f"{number(phase.get('server_cpu_util'))} cores of which main thread "
        f"{number(phase.get('server_main_thread_util'))}, other load {number(phase.get('other_cpu_util'))} cores. "
        f"Raw stacks: `{profiled['raw_path']}`.",
        "",
        "**Where the server's CPU goes** (top 10; /proc CPU per thread, the event loop's share split by its "
        "py-spy samples):",
        "",
        "| # | item | cores | % of server CPU |",
        "|---:|---|---:|---:|",
    ]
    lines += [
        f"| {i} | {row['item']} | {number(row['cores'])} | {row['pct']} |"
        for i, row in enumerate(profiled.get("cpu_weighted", []), 1)
    ]
    lines += [
        "",
        "py-spy busy samples (wall-clock, all Python threads), each attributed to the innermost recognised library:",
        "",
        "| # | category | % busy samples |",
        "|---:|---|---:|",
    ]
    lines += [f"| {i} | {row['item']} | {row['pct']} |" for i, row in enumerate(profiled["categories"], 1)]
    lines += ["", "Top self (leaf) functions:", "", "| # | function (file) | % busy samples |", "|---:|---|---:|"]
    lines += [f"| {i} | `{row['item']}` | {row['pct']} |" for i, row in enumerate(profiled["self"], 1)]

    def thread_line(thread: dict[str, Any]) -> str:
        parts = ", ".join(
            f"{c['item'].split(' (')[0]} {round(100 * c['samples'] / max(1, thread['samples']))} %"
            for c in profiled["per_thread_categories"].get(thread["item"], [])[:4]
        )
        return f"{thread['item']} {thread['pct']} % ({parts})"

    lines += ["", "By thread: " + "; ".join(thread_line(t) for t in profiled["threads"][:4])]
    return "\n".join(lines)
