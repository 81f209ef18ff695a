"""Outage suite: the server in front of a Qdrant it can lose, as a real MCP client sees it.

    MCP client (mcp.client.Client, Streamable HTTP)
      -> the server (a subprocess, QDRANT_URL=http://127.0.0.1:<proxy>, QDRANT_API_KEY)
        -> tcp_proxy.TcpProxy (forward / cut / hang / restore)
          -> Qdrant: QDRANT_TEST_URL's server in the pipeline (the real image; its API key in
             QDRANT_TEST_API_KEY), else the stand-in (tests/standin: Qdrant's engine behind
             Qdrant's REST API, with the API key checked)

The scenarios run in order on one server, never restarted: calls fail fast and say so while
Qdrant is unreachable, /readyz turns 503 and back, calls succeed again without a restart,
every acknowledged write is found afterwards, and only transient failures are retried. They
record their timings: printed after the run, attached to the JUnit report, and written to
outage-timings.json. The fault-injection scenarios need the stand-in's admin endpoint: they
skip against a real server.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.types import CallToolResult
from standin import Standin, spawn_standin
from tcp_proxy import TcpProxy

from qdrant_mcp_memory.store import content_id
from support import ServerProcess, spawn_server

pytestmark = pytest.mark.anyio
API_KEY = "outage-api-key-0123456789abcdef"
COLLECTION = f"outage-{uuid.uuid4().hex[:8]}"  # a real Qdrant may keep collections of earlier runs
# What "fail fast" and "a few seconds" mean here (the measured values are far below; see the report).
FAIL_FAST_S = 3.0
READYZ_WITHIN_S = 5.0
RECOVERY_WITHIN_S = 5.0
HUNG_WITHIN_S = 5.0  # a Qdrant that accepts but never answers: the bound for "fail fast"
TIMINGS: dict[str, float | str] = {}


@dataclass
class Outage:
    server: ServerProcess
    proxy: TcpProxy
    standin: Standin | None  # None against a real Qdrant (QDRANT_TEST_URL)
    qdrant_url: str
    qdrant_api_key: str | None
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> text, every store that returned success

    @property
    def proxied(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def store(self, client: Client, text: str, collection: str = COLLECTION) -> tuple[CallToolResult, float]:
        started = time.monotonic()
        result = await client.call_tool("qdrant-store", {"information": text, "collection_name": collection})
        elapsed = time.monotonic() - started
        if not result.is_error and collection == COLLECTION:
            self.acknowledged[str(result.structured_content["id"])] = text
        return result, elapsed

    async def readyz(self) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(self.server.base + "/readyz")

    def needs_standin(self) -> Standin:
        if self.standin is None:
            pytest.skip("fault injection needs the Qdrant stand-in's admin endpoint")
        return self.standin


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


class TimingsReport:
    """A plugin registered for the run: prints the recorded timings in pytest's closing summary."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if TIMINGS:
            terminalreporter.section("outage timings")
            for key, value in TIMINGS.items():
                terminalreporter.write_line(f"{key}: {value:.3f} s" if isinstance(value, float) else f"{key}: {value}")


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Outage]:
    if not pytestconfig.pluginmanager.has_plugin("outage-timings"):
        pytestconfig.pluginmanager.register(TimingsReport(), "outage-timings")
    workdir = tmp_path_factory.mktemp("outage")
    standin = None
    if os.environ.get("QDRANT_TEST_URL"):
        target = httpx.URL(os.environ["QDRANT_TEST_URL"])
        api_key = os.environ.get("QDRANT_TEST_API_KEY")
        proxy = TcpProxy(target.port or 6333, target.host).start()
    else:
        api_key = API_KEY
        standin = spawn_standin(workdir, api_key=api_key)
        target = httpx.URL(standin.url)
        proxy = TcpProxy(standin.port).start()
    env = {"QDRANT_URL": f"http://127.0.0.1:{proxy.port}", "QDRANT_API_KEY": api_key, "LOG_LEVEL": "INFO"}
    try:
        server = spawn_server(workdir, env)  # waits for /readyz: Qdrant answers through the proxy
    except BaseException:
        proxy.close()
        if standin:
            standin.stop()
        raise
    harness = Outage(server, proxy, standin, str(target), api_key)
    yield harness
    proxy.restore()
    code = server.terminate()
    proxy.close()
    if standin:
        standin.stop()
    (workdir / "outage-timings.json").write_text(json.dumps(TIMINGS, indent=2))
    assert code == 0, f"exit code {code} on SIGTERM:\n{server.log()}"
    assert "Traceback" not in server.log(), server.log()


def timing(record_property: Any, key: str, value: float | str) -> None:
    TIMINGS[key] = value
    record_property(key, value)


# -- (a) baseline --------------------------------------------------------------------------------


async def test_a_baseline_store_and_find(outage: Outage, record_property: Any) -> None:
    async with Client(outage.server.mcp_url) as client:
        for text in [
            "The lighthouse keeper logs the ships that pass at night.",
            "Sourdough needs a lively starter and a long, cold fermentation.",
            "The quarterly report is due on the first Monday of April.",
        ]:
            result, elapsed = await outage.store(client, text)
            assert not result.is_error, text_of(result)
        timing(record_property, "baseline: one qdrant-store", elapsed)
        found = await client.call_tool(
            "qdrant-find", {"query": "when is the report due", "collection_name": COLLECTION}
        )
        assert not found.is_error, text_of(found)
        assert found.structured_content["hits"][0]["document"].startswith("The quarterly report")


# -- (b) + (c) the outage and the recovery, in one client session ---------------------------------


async def test_b_c_outage_fails_fast_then_recovers_without_restart(outage: Outage, record_property: Any) -> None:
    pid = outage.server.process.pid
    async with Client(outage.server.mcp_url) as client:  # one MCP session through the whole outage
        result, _ = await outage.store(client, "Written just before the link to Qdrant was cut.")
        assert not result.is_error, text_of(result)

        outage.proxy.cut()
        cut_at = time.monotonic()
        # /readyz turns 503, with the reason.
        while (ready := await outage.readyz()).status_code != 503:
            assert time.monotonic() - cut_at < READYZ_WITHIN_S, ready.text
            await anyio.sleep(0.05)
        timing(record_property, "cut -> /readyz 503", time.monotonic() - cut_at)
        reason = ready.json()["reason"]
        assert f"Qdrant at {outage.proxied} is unreachable" in reason, reason

        # Every tool fails fast, with a message that names Qdrant, says it is unreachable, and that a retry is fine.
        calls: list[tuple[str, dict[str, Any]]] = [
            ("qdrant-store", {"information": "Written while Qdrant was unreachable.", "collection_name": COLLECTION}),
            ("qdrant-store-many", {"entries": [{"information": "batch during outage 1"},
                                               {"information": "batch during outage 2"}],
                                   "collection_name": COLLECTION}),
            ("qdrant-find", {"query": "lighthouse", "collection_name": COLLECTION}),
            ("qdrant-delete", {"ids": [123456789], "collection_name": COLLECTION}),
            ("qdrant-collection-info", {"collection_name": COLLECTION}),
            ("qdrant-list-collections", {}),
        ]  # fmt: skip
        slowest = 0.0
        for tool, arguments in calls:
            started = time.monotonic()
            failed = await client.call_tool(tool, arguments)
            elapsed = time.monotonic() - started
            message = text_of(failed)
            assert failed.is_error, f"{tool} succeeded while Qdrant was cut off: {failed}"
            assert f"Qdrant at {outage.proxied} is unreachable" in message and "can be retried" in message, message
            assert elapsed < FAIL_FAST_S, (tool, elapsed)
            timing(record_property, f"cut: {tool} failed after", elapsed)
            slowest = max(slowest, elapsed)
        timing(record_property, "cut: slowest failing call", slowest)
        timing(record_property, "cut: message", message)
        assert outage.server.process.poll() is None
        assert "Traceback" not in outage.server.log()

        # Qdrant comes back: the same session, the same process, calls succeed again.
        outage.proxy.restore()
        restored_at = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            result, _ = await outage.store(client, "The first write after Qdrant came back.")
            if not result.is_error:
                break
            assert time.monotonic() - restored_at < RECOVERY_WITHIN_S, text_of(result)
            await anyio.sleep(0.05)
        timing(record_property, "restore -> first successful qdrant-store", time.monotonic() - restored_at)
        timing(record_property, "restore: attempts until success", str(attempts))
        while (ready := await outage.readyz()).status_code != 200:
            assert time.monotonic() - restored_at < RECOVERY_WITHIN_S, ready.text
            await anyio.sleep(0.05)
        timing(record_property, "restore -> /readyz 200", time.monotonic() - restored_at)
        many = await client.call_tool(
            "qdrant-store-many",
            {"entries": [{"information": "Recovered batch, first."}, {"information": "Recovered batch, second."}],
             "collection_name": COLLECTION},
        )  # fmt: skip
        assert not many.is_error, text_of(many)
        for point_id, entry in zip(many.structured_content["ids"], ["first", "second"], strict=True):
            outage.acknowledged[str(point_id)] = f"Recovered batch, {entry}."
    assert outage.server.process.pid == pid and outage.server.process.poll() is None  # never restarted


async def test_b_write_in_flight_when_the_link_is_cut(outage: Outage, record_property: Any) -> None:
    """Qdrant applies a write but its answer is lost with the link: the call fails fast and says it can be
    retried; the retry (same text, so the same id) acknowledges it, and the collection holds one point."""
    standin = outage.needs_standin()
    text = "A write whose answer was lost when the link went down."
    point_id = content_id(text)
    upserts = f"^/collections/{COLLECTION}/points$"
    # Carried out at once, its answer held for 1 s: the link is cut meanwhile.
    standin.inject(None, count=1, method="PUT", path=upserts, delay=1.0, after=True)
    standin.reset_requests()
    async with Client(outage.server.mcp_url) as client:
        outcome: dict[str, Any] = {}

        async def call() -> None:
            outcome["result"], _ = await outage.store(client, text)
            outcome["ended"] = time.monotonic()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            for _ in range(500):  # until the write has reached Qdrant
                if any(r["method"] == "PUT" for r in standin.requests()):
                    break
                await anyio.sleep(0.02)
            await anyio.sleep(0.2)  # inside the held answer
            outage.proxy.cut()
            cut_at = time.monotonic()
        result = outcome["result"]
        message = text_of(result)
        assert result.is_error and "is unreachable" in message and "can be retried" in message, message
        timing(record_property, "in-flight write: cut -> call failed", outcome["ended"] - cut_at)
        assert await count_ids(outage, [point_id]) == 1  # applied, though never acknowledged
        outage.proxy.restore()
        retried, _ = await outage.store(client, text)  # what the message tells the caller to do
        assert not retried.is_error, text_of(retried)
        assert retried.structured_content["id"] == point_id
    assert await count_ids(outage, [point_id]) == 1


async def count_ids(outage: Outage, ids: list[str]) -> int:
    """Asked of Qdrant directly, past the proxy."""
    headers = {"api-key": outage.qdrant_api_key} if outage.qdrant_api_key else {}
    async with httpx.AsyncClient(base_url=outage.qdrant_url, headers=headers) as http:
        response = await http.post(
            f"/collections/{COLLECTION}/points/count", json={"filter": {"must": [{"has_id": ids}]}, "exact": True}
        )
    return int(response.json()["result"]["count"])


# -- (e) transient failures are retried, permanent ones are not --------------------------------------


class Case(NamedTuple):
    status: int
    count: int  # requests that fail in a row
    succeeds: bool
    requests: int  # requests Qdrant sees for the call
    message: str | None = None


CASES = [
    Case(503, 1, True, 2),
    Case(502, 1, True, 2),
    Case(504, 2, True, 3),
    Case(503, 3, False, 3, "is unreachable (HTTP 503)"),
    Case(400, 1, False, 1, "Qdrant rejected upsert (400): Wrong input: injected"),
    Case(403, 1, False, 1, "refused the request (403): check QDRANT_API_KEY"),
    Case(500, 1, False, 1, "Qdrant rejected upsert (500)"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.status}x{c.count}" for c in CASES])
async def test_e_only_transient_failures_are_retried(outage: Outage, record_property: Any, case: Case) -> None:
    standin = outage.needs_standin()
    upserts = f"^/collections/{COLLECTION}/points$"
    async with Client(outage.server.mcp_url) as client:
        warm, _ = await outage.store(client, "Warm-up: the collection's layout is known before the fault.")
        assert not warm.is_error
        standin.reset_requests()
        error = "Wrong input: injected" if case.status == 400 else None
        standin.inject(case.status, count=case.count, method="PUT", path=upserts, error=error)
        result, elapsed = await outage.store(client, f"Stored through injected HTTP {case.status} x{case.count}.")
    seen = standin.requests()
    standin.clear_faults()
    # The layout is known: besides reading the point it may replace (whose created_at a store keeps),
    # the call makes the upsert alone, once per attempt.
    reads = [r for r in seen if r["method"] != "PUT"]
    assert all((r["method"], r["path"]) == ("POST", f"/collections/{COLLECTION}/points/scroll") for r in reads), reads
    upserted = [r for r in seen if r["method"] == "PUT"]
    assert [r["path"] for r in upserted] == [f"/collections/{COLLECTION}/points"] * case.requests
    assert [r["fault"] for r in upserted] == [True] * case.count + [False] * (case.requests - case.count)
    if case.succeeds:
        assert not result.is_error, text_of(result)
    else:
        # A permanent failure fails at once: the one request above, no retry (the time is recorded below).
        assert result.is_error and case.message in text_of(result), text_of(result)
    outcome = "succeeded" if case.succeeds else "failed"
    timing(record_property, f"injected {case.status} x{case.count}: {outcome} after", elapsed)


# -- (d) every acknowledged write is found -------------------------------------------------------------


async def test_d_every_acknowledged_write_is_found(outage: Outage, record_property: Any) -> None:
    acknowledged = outage.acknowledged
    assert len(acknowledged) >= 8
    async with Client(outage.server.mcp_url) as client:
        info = await client.call_tool("qdrant-collection-info", {"collection_name": COLLECTION})
        assert not info.is_error, text_of(info)
        # Nothing was written while the link was cut, except what a call acknowledged (or was retried into).
        assert info.structured_content["points_count"] == len(acknowledged), (info.structured_content, acknowledged)
        for point_id, text in acknowledged.items():
            found = await client.call_tool("qdrant-find", {"query": text, "limit": 1, "collection_name": COLLECTION})
            hit = found.structured_content["hits"][0]
            assert (str(hit["id"]), hit["document"]) == (point_id, text)
    # And from Qdrant itself, by the ids the calls returned.
    headers = {"api-key": outage.qdrant_api_key} if outage.qdrant_api_key else {}
    async with httpx.AsyncClient(base_url=outage.qdrant_url, headers=headers) as http:
        response = await http.post(f"/collections/{COLLECTION}/points", json={"ids": list(acknowledged)})
    stored = {str(p["id"]): p["payload"]["document"] for p in response.json()["result"]}
    assert stored == acknowledged
    timing(record_property, "acknowledged writes found afterwards", f"{len(stored)}/{len(acknowledged)}")


# -- (f) a hung Qdrant, and a lost answer to a collection's creation --------------------------------


async def test_f_a_hung_qdrant_turns_readyz_503(outage: Outage, record_property: Any) -> None:
    """Qdrant accepts connections but never answers: /readyz says so within its 2 s ping deadline."""
    outage.proxy.hang()
    hung_at = time.monotonic()
    try:
        ready = await outage.readyz()
        timing(record_property, "hang -> /readyz 503", time.monotonic() - hung_at)
        assert ready.status_code == 503 and ready.json()["reason"] == "Qdrant did not answer in time", ready.text
    finally:
        outage.proxy.restore()


async def test_f_a_hung_qdrant_fails_calls_fast(outage: Outage, record_property: Any) -> None:
    outage.proxy.hang()
    result = None
    try:
        async with Client(outage.server.mcp_url) as client:
            started = time.monotonic()
            with anyio.move_on_after(HUNG_WITHIN_S):  # a read-only call: nothing is left half-written
                result = await client.call_tool("qdrant-find", {"query": "lighthouse", "collection_name": COLLECTION})
            elapsed = time.monotonic() - started
    finally:
        outage.proxy.restore()  # resets the hung connections: the abandoned call ends at once
    waited = "failed after" if result is not None else "still waiting, abandoned after"
    timing(record_property, f"hang: qdrant-find {waited}", elapsed)
    assert result is not None and result.is_error and elapsed < HUNG_WITHIN_S


async def test_f_a_lost_answer_to_create_collection_is_not_an_error(outage: Outage, record_property: Any) -> None:
    standin = outage.needs_standin()
    collection = f"created-once-{uuid.uuid4().hex[:8]}"
    standin.inject(503, count=1, method="PUT", path=f"^/collections/{collection}$", after=True)
    async with Client(outage.server.mcp_url) as client:
        result, _ = await outage.store(client, "The first memory of a new collection.", collection)
        again, _ = await outage.store(client, "The first memory of a new collection.", collection)
    standin.clear_faults()
    timing(record_property, "lost create answer: first store", text_of(result) if result.is_error else "succeeded")
    assert not again.is_error, text_of(again)  # the collection exists: the next call works
    assert not result.is_error, text_of(result)
