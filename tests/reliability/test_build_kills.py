"""SIGKILL during an index build, at every named step and at random moments, under a steady
write load: after each restart every acknowledged write is there with its payload, nothing
unacknowledged is half there, no build child outlives its server, no build folder is left.

Each case starts a real server on a folder holding nearly enough unindexed points for a
build (written in-process: embedding 8 000 texts would take minutes here). A real MCP client
stores batches through it until a build is due, pauses (a build starts once writes pause),
and goes on writing while the build runs. The server, or only the build's child, is killed
at one step (QDRANT_MCP_TEST_STEPS, backends/checkpoints.py). A second server is then
started on the folder; once it serves, it is stopped and the folder is read back through
the engine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client
from storage_faults import Steps, process_gone, read_folder, seed_folder, seed_payload

from qdrant_mcp_memory.backends.edge import OPTIMIZE_AT_UNINDEXED, QUIET_S
from qdrant_mcp_memory.settings import TIME_KEYS
from support import ServerProcess, spawn_server

NOTES = "notes"
BATCH = 10
# Seeded points: the writes of the first run make a build due.
SEEDED = OPTIMIZE_AT_UNINDEXED - 200
FIRST_ID = 10_000_000


@dataclass
class Tally:
    runs: int = 0  # servers started
    kills: int = 0
    checked: int = 0  # acknowledged writes found again with their payload
    lost: int = 0


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    found = Tally()
    yield found
    print(f"\nkill suite: {found.runs} runs, {found.kills} kills, {found.checked} acknowledged writes checked, "
          f"{found.lost} lost")  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template") / "data"
    seed_folder(folder, NOTES, SEEDED)
    return folder


@pytest.fixture
def folder(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    subprocess.run(["cp", "-a", "--sparse=always", str(template), str(copy)], check=True)
    return copy


@dataclass
class Writer:
    """A client storing batches of BATCH documents through the server, one call after another;
    once `pause_after` are acknowledged it pauses long enough for a due build to start."""

    url: str
    tag: str
    next_id: int
    pause_after: int
    acked: dict[int, dict[str, Any]] = field(default_factory=dict)
    unacked: list[dict[int, dict[str, Any]]] = field(default_factory=list)  # sent, never confirmed
    ended_by: str | None = None  # why the writer stopped on its own (the server went away)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        self._thread = threading.Thread(target=anyio.run, args=(self._write,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)
        assert not self._thread.is_alive(), "the writer did not stop"

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"{len(self.acked)} writes acknowledged in {timeout} s ({self})"
            time.sleep(0.05)

    async def _write(self) -> None:
        batch: dict[int, dict[str, Any]] = {}
        try:
            async with Client(self.url) as client:
                while not self._stop.is_set():
                    batch = self._next_batch()
                    entries = [
                        {"information": p["document"], "metadata": p["metadata"], "id": i} for i, p in batch.items()
                    ]
                    result = await client.call_tool("qdrant-store-many", {"collection_name": NOTES, "entries": entries})
                    if result.is_error:  # refused: unacknowledged, so all or nothing of it may be there
                        self.unacked.append(batch)
                    else:
                        self.acked.update(batch)
                    batch = {}
                    if len(self.acked) >= self.pause_after > len(self.acked) - BATCH:
                        await anyio.sleep(2 * QUIET_S + 1)  # the server sees a quiet QUIET_S within 2 QUIET_S
        except Exception as exc:  # the server was killed: the call in flight has no answer
            self.ended_by = repr(exc)
            if batch:
                self.unacked.append(batch)

    def _next_batch(self) -> dict[int, dict[str, Any]]:
        batch = {
            self.next_id + i: {"document": f"{self.tag} document {self.next_id + i}", "metadata": {"tag": self.tag}}
            for i in range(BATCH)
        }
        self.next_id += BATCH
        return batch


@dataclass
class Run:
    """One server on the folder, with a writer while it serves."""

    server: ServerProcess
    writer: Writer | None = None

    def kill(self, tally: Tally) -> None:
        self.server.process.kill()
        self.server.process.wait(10)
        tally.kills += 1
        if self.writer is not None:
            self.writer.stop()


class Case:
    """The runs of one test on one folder, and what their clients were told."""

    def __init__(self, folder: Path, tmp_path: Path, tally: Tally) -> None:
        self.folder = folder
        self.tmp_path = tmp_path
        self.tally = tally
        self.steps = Steps(tmp_path / "steps")
        self.writers: list[Writer] = []

    def start(self, *, hold: tuple[str, ...] = (), write: bool = True, ready: bool = True) -> Run:
        self.steps.clear()
        self.steps.hold(*hold)
        env = {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(self.folder), **self.steps.env}
        server = spawn_server(self.tmp_path, env, wait="/readyz" if ready else None)
        self.tally.runs += 1
        run = Run(server)
        if write:
            due = OPTIMIZE_AT_UNINDEXED - SEEDED + 2 * BATCH  # more than the points left for a build
            run.writer = Writer(server.mcp_url, f"run {self.tally.runs}", FIRST_ID + 1_000_000 * self.tally.runs, due)
            self.writers.append(run.writer.start())
        return run

    def check(self) -> None:
        """No build child left; a restarted server serves everything acknowledged; then, read back
        from the folder, every acknowledged write is there exactly, and no unacknowledged one in part."""
        assert all(process_gone(pid) for pid in build_children(self.folder)), "a build child outlived its server"
        run = self.start(write=False)
        leftovers = [p for p in self.folder.glob("collections/*/*.building") if f".{run.server.pid}-" not in p.name]
        assert not leftovers, f"builds of the killed server were not removed: {leftovers}"
        acked = {i: p for writer in self.writers for i, p in writer.acked.items()}
        unacked = [batch for writer in self.writers for batch in writer.unacked]
        counted = points_count(run.server)
        assert SEEDED + len(acked) <= counted <= SEEDED + len(acked) + BATCH * len(unacked), run.server.log()
        assert run.server.terminate() == 0, run.server.log()
        found = read_folder(self.folder, NOTES)
        missing = [i for i, payload in acked.items() if as_sent(found.get(i)) != payload]
        self.tally.checked += len(acked) - len(missing)
        self.tally.lost += len(missing)
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost or changed: {missing[:10]}"
        assert all(found[i] == seed_payload(i) for i in range(SEEDED))
        for batch in unacked:
            present = [i for i in batch if i in found]
            assert present in ([], list(batch)), f"an unacknowledged batch is half there: {present} of {list(batch)}"
            assert all(as_sent(found[i]) == batch[i] for i in present)
        sent = set(acked).union(*unacked)
        assert set(found) <= set(range(SEEDED)) | sent, "points nobody wrote"


def as_sent(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored payload as its writer sent it: without the times the server adds to every write."""
    if payload is None:
        return None
    assert "created_at" in payload and "updated_at" in payload, payload
    return {key: value for key, value in payload.items() if key not in TIME_KEYS}


def points_count(server: ServerProcess) -> int:
    async def ask() -> int:
        async with Client(server.mcp_url) as client:
            result = await client.call_tool("qdrant-collection-info", {"collection_name": NOTES})
            assert not result.is_error, result
            return int(result.structured_content["points_count"])

    return anyio.run(ask)


def build_children(folder: Path) -> list[int]:
    """Index-build children working in `folder` (their command line names it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"qdrant_mcp_memory.backends.optimize" in argv and any(str(folder).encode() in a for a in argv):
            found.append(int(cmdline.parent.name))
    return found


def ready_conditions(server: ServerProcess) -> list[str]:
    return [c["kind"] for c in httpx.get(server.base + "/readyz", timeout=5).json().get("conditions", [])]


@pytest.fixture
def case(folder: Path, tmp_path: Path, tally: Tally) -> Case:
    return Case(folder, tmp_path, tally)


# The server's own steps, from the copy to the switch (backends/checkpoints.py).
@pytest.mark.parametrize("step", ["copying", "built", "replayed", "pointer-written", "switched"])
def test_killing_the_server_at_a_step_of_the_build(case: Case, step: str) -> None:
    run = case.start(hold=(step,))
    case.steps.wait(step)
    run.kill(case.tally)
    case.check()


def test_killing_the_server_while_its_child_builds_kills_the_child(case: Case) -> None:
    run = case.start()
    child = case.steps.wait("child-loaded")
    run.kill(case.tally)
    assert process_gone(child), "the build child outlived its server"
    case.check()


def test_killing_the_server_while_it_removes_the_replaced_generation(case: Case) -> None:
    run = case.start()
    case.steps.wait("switched")
    run.writer.wait_for(len(run.writer.acked) + BATCH)  # writes into the new generation
    run.kill(case.tally)
    restart = case.start(hold=("cleaning",), write=False, ready=False)  # its start removes gen-1
    case.steps.wait("cleaning")
    restart.kill(case.tally)
    case.check()


@pytest.mark.parametrize("step", ["child-loaded", "optimizing", "child-optimized"])
def test_killing_the_child_at_a_step_fails_the_build_not_the_server(case: Case, step: str) -> None:
    run = case.start(hold=() if step == "optimizing" else (step,))
    child = case.steps.wait("child-loaded" if step == "optimizing" else step)
    os.kill(child, signal.SIGKILL)
    case.tally.kills += 1
    deadline = time.monotonic() + 60
    while "index-build-failed" not in ready_conditions(run.server):
        assert time.monotonic() < deadline, run.server.log()
        time.sleep(0.1)
    run.writer.wait_for(len(run.writer.acked) + 5 * BATCH)  # still acknowledging writes
    run.kill(case.tally)
    case.check()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killing_the_server_at_a_random_moment(case: Case, seed: int) -> None:
    run = case.start()
    time.sleep(random.Random(seed).uniform(0, 10))
    run.kill(case.tally)
    case.check()
