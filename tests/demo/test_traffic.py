"""demo/traffic.py, the demo profile's traffic generator: bounded, resilient, stoppable.

It runs as users run it (`python demo/traffic.py`, configured by DEMO_* variables) against
real servers started as subprocesses on loopback (QDRANT_URL=:memory:). One white-box test
drives its planner against a failing fake to show the note cap holds whatever fails.

The compose side (the `demo` service seeding, then exiting after DEMO_DURATION) is
tests/stack/test_compose_up.py::test_demo_profile_seeds_through_mcp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from support import REPO, ServerProcess, free_port, spawn_server

DEMO = REPO / "demo"
sys.path.insert(0, str(DEMO))
import client as demo_client  # noqa: E402  # demo/client.py, as traffic.py imports it
import seed as demo_seed  # noqa: E402  # demo/seed.py, after the path is set
import traffic  # noqa: E402  # demo/traffic.py, after the path is set

pytestmark = pytest.mark.anyio
TOKEN = "demo-traffic-test-token-0123456789"
SAMPLES = len(demo_seed.SAMPLES)
NOTES = re.compile(r"notes (\d+)/(\d+)")


class Traffic:
    """`python demo/traffic.py` with its stdout in a file the test reads as it grows."""

    def __init__(self, workdir: Path, url: str, **env: str) -> None:
        self.out = workdir / f"traffic-{time.monotonic_ns()}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_")}
        full = {**base, "DEMO_MCP_URL": url, "DEMO_RANDOM_SEED": "7", "DEMO_TIMEOUT": "20", **env}
        with self.out.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(DEMO / "traffic.py")], env=full, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait_for(self, pattern: str, timeout: float = 60, after: int = 0) -> int:
        """Index of the first line from `after` on matching `pattern`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, line in enumerate(self.lines()[after:], start=after):
                if re.search(pattern, line):
                    return index
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} (exit {self.process.poll()}):\n{self.text()[-4000:]}")

    def stop(self, timeout: float = 10) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def run_traffic(tmp_path: Path) -> Iterator[Any]:
    started: list[Traffic] = []

    def start(url: str, **env: str) -> Traffic:
        started.append(Traffic(tmp_path, url, **env))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="module")
def readonly_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The read-only demo as compose.demo-readonly.yaml builds it: seeded first through a writable
    server of its own over stdio (demo/seed.py with DEMO_MCP_COMMAND), then served read-only
    with a bearer token from the same storage."""
    workdir = tmp_path_factory.mktemp("readonly")
    storage = {"QDRANT_LOCAL_PATH": str(workdir / "qdrant"), "COLLECTION_NAME": "memories"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "QDRANT_URL"))}
    command = f"{sys.executable} -m qdrant_mcp_memory --transport stdio"
    seeded = subprocess.run(
        [sys.executable, str(DEMO / "seed.py")],
        env={**env, **storage, "DEMO_MCP_COMMAND": command, "LOG_LEVEL": "WARNING"},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert seeded.returncode == 0 and "demo: done" in seeded.stdout, seeded.stdout + seeded.stderr
    server = spawn_server(workdir, {"QDRANT_URL": None, **storage, "QDRANT_READ_ONLY": "true", "MCP_AUTH_TOKEN": TOKEN})
    yield server
    assert server.terminate() == 0, server.log()


async def points(url: str, collection: str) -> int:
    async with Client(url) as session:
        result = await session.call_tool("qdrant-collection-info", {"collection_name": collection})
    assert not result.is_error, result.content
    return int(result.structured_content["points_count"])


def counted(lines: list[str], pattern: str) -> int:
    return sum(1 for line in lines if line.startswith("traffic: ") and re.search(pattern, line))


async def test_high_rate_makes_every_kind_of_call_under_the_note_cap(
    shared_server: ServerProcess, run_traffic: Any
) -> None:
    cap, rate, duration = 4, 25, 6
    collection = "traffic-mix"
    run = run_traffic(
        shared_server.mcp_url,
        DEMO_COLLECTION=collection,
        DEMO_RATE=str(rate),
        DEMO_DURATION=str(duration),
        DEMO_MAX_NOTES=str(cap),
        DEMO_ERROR_RATE="0.1",
    )
    run.wait_for(r"^traffic: \d+ calls/s")  # seeded
    seen = []
    while run.process.poll() is None:  # the real collection, sampled while the traffic runs
        seen.append(await points(shared_server.mcp_url, collection))
        await asyncio.sleep(0.2)
    assert run.process.wait(timeout=30) == 0, run.text()
    seen.append(await points(shared_server.mcp_url, collection))

    lines = run.lines()
    assert "demo: done" in run.text()
    assert counted(lines, r"#\d+ find '|#\d+ find \"") >= 20
    assert counted(lines, r"#\d+ store .* stored as ") >= 3
    assert counted(lines, r"#\d+ delete the \d+ oldest notes .* -> deleted [1-9]") >= 1  # over the cap: deleted
    assert counted(lines, r"#\d+ delete notes with source=demo-traffic") == 1  # an earlier run's leftovers
    assert counted(lines, r"#\d+ collection-info -> \d+ points") >= 1
    assert counted(lines, r"#\d+ list-collections -> ") >= 1
    assert counted(lines, r"\(deliberate error\) -> rejected as intended") >= 1
    assert counted(lines, "FAILED") == 0, run.text()
    # One call at a time at about DEMO_RATE: never more than the rate allows.
    calls = counted(lines, r"#\d+ ")
    assert 20 <= calls <= rate * duration * 1.3, calls
    # The cap, as the generator counts its notes and as the collection holds them.
    assert max(int(n) for n, _ in NOTES.findall(run.text())) <= cap
    assert seen and max(seen) <= SAMPLES + cap, seen
    assert seen[-1] >= SAMPLES, seen
    assert re.search(rf"stopped after \d+ calls .*; 0 failed; \d notes kept \(cap {cap}\)", lines[-1]), lines[-1]


def test_sigterm_stops_it_with_exit_0(shared_server: ServerProcess, run_traffic: Any) -> None:
    run = run_traffic(shared_server.mcp_url, DEMO_COLLECTION="traffic-sigterm", DEMO_RATE="4")
    run.wait_for(r"#3 ")
    start = time.monotonic()
    assert run.stop() == 0, run.text()
    assert time.monotonic() - start < 5
    text = run.text()
    assert "traffic: SIGTERM: stopping" in text and "traffic: stopped after" in text, text
    assert "Traceback" not in text, text


def test_sigterm_while_the_server_is_unreachable_exits_0(run_traffic: Any) -> None:
    run = run_traffic(f"http://127.0.0.1:{free_port()}/mcp")
    run.wait_for(r"demo: seeding failed \(.*\); attempt 1 of 5")
    assert run.stop() == 0, run.text()
    assert "Traceback" not in run.text()


def test_a_server_restart_is_survived(tmp_path: Path, run_traffic: Any) -> None:
    port = free_port()  # the restarted server takes the same port
    (tmp_path / "first").mkdir()
    first = spawn_server(tmp_path / "first", port=port)
    run = run_traffic(first.mcp_url, DEMO_COLLECTION="traffic-restart", DEMO_RATE="10", DEMO_MAX_NOTES="3")
    try:
        run.wait_for(r"#8 ")
        assert first.terminate() == 0, first.log()
        lost = run.wait_for(r"traffic: connection lost|FAILED", timeout=30)
        (tmp_path / "second").mkdir()
        second = spawn_server(tmp_path / "second", port=port)
        try:
            # Reconnected: calls work again (the new server is empty; stores recreate the collection).
            run.wait_for(r"#\d+ store .* stored as ", after=lost, timeout=60)
            again = run.wait_for(r"#\d+ find .* -> (\d+ hits|no hits|collection does not exist)", after=lost)
            assert run.process.poll() is None, run.text()
            assert run.stop() == 0, run.text()
        finally:
            second.terminate()
    finally:
        first.terminate()
    text = run.text()
    assert "Traceback" not in text, text
    assert max(int(n) for n, _ in NOTES.findall(text)) <= 3
    assert again > lost


def test_read_only_demo_gets_reads_only(readonly_server: ServerProcess, run_traffic: Any) -> None:
    run = run_traffic(readonly_server.mcp_url, DEMO_TOKEN=TOKEN, DEMO_RATE="20")
    run.wait_for(r"#12 ")
    assert run.stop() == 0, run.text()
    text = run.text()
    assert "seeding skipped" in text
    assert counted(run.lines(), r"#\d+ find .* -> \d+ hits, best") >= 5  # what the seeding job stored
    assert counted(run.lines(), rf"#\d+ collection-info -> {SAMPLES} points") >= 1
    assert not re.search(r"#\d+ (store|delete)", text), text
    assert "FAILED" not in text, text


def test_a_refused_token_fails_at_once_saying_why(readonly_server: ServerProcess, run_traffic: Any) -> None:
    run = run_traffic(readonly_server.mcp_url, DEMO_TOKEN="not-the-token-at-all")  # noqa: S106  # a wrong token on purpose
    assert run.process.wait(timeout=30) == 1, run.text()
    assert "HTTP 401: the bearer token was refused" in run.text()


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEMO_RATE", "0"), ("DEMO_RATE", "fast"), ("DEMO_MAX_NOTES", "2.5"), ("DEMO_ERROR_RATE", "0.5")],
)
def test_a_bad_setting_exits_2_naming_it(run_traffic: Any, name: str, value: str) -> None:
    run = run_traffic("http://127.0.0.1:9/mcp", **{name: value})
    assert run.process.wait(timeout=30) == 2
    assert name in run.text()


class FlakyServer:
    """A fake MCP session: a real collection's bookkeeping, and failures before or after applying."""

    def __init__(self, seed: int) -> None:
        import random

        self.rng = random.Random(seed)
        self.points: set[str] = set()  # demo-traffic notes the "collection" holds
        self.in_flight = 0
        self.most_in_flight = 0

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return self._answer(name, arguments)
        finally:
            self.in_flight -= 1

    def _answer(self, name: str, arguments: dict[str, Any]) -> Any:
        from mcp.types import CallToolResult, TextContent

        fate = self.rng.random()
        if fate < 0.1:
            raise ConnectionError("lost before the server saw it")
        if fate < 0.2:
            return CallToolResult(content=[TextContent(type="text", text="Qdrant unreachable")], is_error=True)
        content: dict[str, Any] = {}
        if name == "qdrant-store":
            self.points.add(arguments["id"])
        elif name == "qdrant-delete":
            if "ids" in arguments:
                content["deleted"] = len(self.points & set(arguments["ids"]))
                self.points -= set(arguments["ids"])
            else:
                content["deleted"], self.points = len(self.points), set()
        if fate < 0.3:
            raise ConnectionError("applied, but the answer was lost")
        error = name == "qdrant-find" and arguments.get("limit") == 0
        return CallToolResult(content=[TextContent(type="text", text="ok")], structured_content=content, is_error=error)


@pytest.mark.parametrize("seed", range(5))
async def test_the_note_cap_holds_whatever_fails(seed: int) -> None:
    """White-box: the planner against a fake that fails a third of the calls, some after applying them."""
    cap = 5
    fake = FlakyServer(seed)
    demo = demo_client.Client(
        session=fake,
        server="fake",
        collection="c",
        schemas={name: {"properties": {"collection_name": {}}} for name in traffic.TOOLS.values()},
    )
    settings = traffic.Settings(rate=50, max_notes=cap, error_rate=0.05, random_seed=seed)
    run = traffic.Traffic(settings, asyncio.Event(), say=lambda line: None)
    run.counts.clear()
    for _ in range(2000):
        call = run.retry or run._plan(demo)
        run.retry = None
        with contextlib.suppress(ConnectionError):
            await run._make(demo, call)
        assert len(fake.points) <= cap
        assert fake.points <= set(run.notes)  # every note the collection holds is one it tracks
        assert len(run.notes) <= cap
    assert fake.most_in_flight == 1
    assert run.counts["store"] > 100 and run.counts["delete"] > 10, run.counts
