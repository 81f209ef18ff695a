"""The bad-call corpus (bad_tool_calls.json) against real servers, in both protocol eras.

Each case must be refused clearly: an isError result or a JSON-RPC error (never -32603,
internal error) answering the request's id, whose message names the parameter and holds the
expected words, each as a whole token; never an HTTP 5xx, never a hang, never a traceback or
ERROR line in the server's log. After each, a valid call must work, no collection may have
appeared or gone, and the collection the cases aim at must hold exactly what it held before
(a wrongly accepted write or delete shows there; the seed is then restored so one defect does
not hide others).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from reliability_support import (
    CORPUS_COLLECTION,
    ERAS,
    BadCall,
    Era,
    Fingerprint,
    LogWatch,
    expand,
    fingerprint,
    load_corpus,
    names,
    open_era,
    refusal_problems,
    restore,
    seed,
)

from support import ServerProcess

pytestmark = pytest.mark.reliability

CORPUS = load_corpus()
COLLECTION = CORPUS_COLLECTION


class Target:
    """One server under the corpus: a session per era, its log, and the data that must not change.

    A writable server is seeded here (and restored after a case changed its data); a read-only
    one was seeded before it started."""

    def __init__(self, server: ServerProcess, client: httpx.Client, *, writable: bool = True) -> None:
        self.server = server
        self.writable = writable
        self.eras: dict[str, Era] = {name: open_era(name, server.mcp_url, client) for name in ERAS}
        if writable:
            seed(self.eras["modern"], COLLECTION)
        self.baseline: Fingerprint = fingerprint(self.eras["modern"], COLLECTION)
        self.log = LogWatch(server.log_path)
        self.changed: list[str] = []

    def run(self, call: BadCall, era_name: str) -> list[str]:
        era = self.eras[era_name]
        try:
            reply = call.send(era)
        except httpx.TimeoutException:
            problems = ["no answer within the per-call timeout (a hang)"]
        else:
            problems = refusal_problems(reply, call)
            if reply.status == 404 and era_name == "legacy":
                problems.append("the bad call ended the session")
                era.open()
        problems += self.check_after(era, call.id)
        return problems

    def check_after(self, era: Era, label: str) -> list[str]:
        """The next valid call works, the data is as before, the log is clean."""
        problems = []
        try:
            now = fingerprint(era, COLLECTION)
        except AssertionError as exc:
            problems.append(f"the next valid call failed: {exc}")
        else:
            if now != self.baseline:
                problems.append(f"the data changed: {now.differs_from(self.baseline)}")
                self.changed.append(label)
                if self.writable:
                    restore(self.eras["modern"], COLLECTION)
                # What cannot be undone (no tool removes a collection) is reported once.
                self.baseline = fingerprint(self.eras["modern"], COLLECTION)
        problems += [f"server log: {line}" for line in self.log.problems()]
        return problems


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture(scope="module")
def arbitrary(arbitrary_server: ServerProcess, http: httpx.Client) -> Target:
    return Target(arbitrary_server, http)


@pytest.fixture(scope="module")
def typed(typed_server: ServerProcess, http: httpx.Client) -> Target:
    return Target(typed_server, http)


@pytest.fixture(scope="module")
def default(default_server: ServerProcess, http: httpx.Client) -> Target:
    return Target(default_server, http)


@pytest.fixture(scope="module")
def read_only(read_only_server: ServerProcess, http: httpx.Client) -> Target:
    return Target(read_only_server, http, writable=False)


def _cases(kind: str) -> list[Any]:
    return [pytest.param(era, call, id=f"{era}-{call.id}") for call in CORPUS if kind in call.servers for era in ERAS]


def _report(call: BadCall, problems: list[str]) -> str:
    return f"{call.id} ({call.category}; {call.note or 'no note'}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize(("era", "call"), _cases("arbitrary"))
def test_bad_call_is_refused_clearly(arbitrary: Target, era: str, call: BadCall) -> None:
    problems = arbitrary.run(call, era)
    assert not problems, _report(call, problems)


@pytest.mark.parametrize(("era", "call"), _cases("typed"))
def test_bad_call_is_refused_clearly_with_typed_filters(typed: Target, era: str, call: BadCall) -> None:
    problems = typed.run(call, era)
    assert not problems, _report(call, problems)


@pytest.mark.parametrize(("era", "call"), _cases("default"))
def test_bad_call_is_refused_clearly_without_filter_settings(default: Target, era: str, call: BadCall) -> None:
    problems = default.run(call, era)
    assert not problems, _report(call, problems)


@pytest.mark.parametrize(("era", "call"), _cases("read-only"))
def test_bad_call_is_refused_clearly_when_read_only(read_only: Target, era: str, call: BadCall) -> None:
    problems = read_only.run(call, era)
    assert not problems, _report(call, problems)


SDK_MODES = {"legacy": "legacy", "modern": "auto"}


@pytest.mark.anyio
@pytest.mark.parametrize("era", ERAS)
async def test_the_sdk_client_sees_the_same_refusals(arbitrary: Target, era: str) -> None:
    """Every case the SDK's client can encode, through that client: it must see an error with the same words."""
    problems = []
    async with Client(arbitrary.server.mcp_url, mode=SDK_MODES[era]) as client:
        for call in CORPUS:
            if call.raw or "arbitrary" not in call.servers:
                continue
            try:
                result = await client.call_tool(call.tool, expand(call.arguments))
            except MCPError as exc:
                words = str(exc)
            except (ValueError, TypeError) as exc:  # the client's own serializer refused (depth limits)
                if "serializ" in str(exc).lower():
                    continue
                raise
            else:
                if not result.is_error:
                    problems.append(f"{call.id}: accepted: {result.structured_content}")
                    continue
                words = "\n".join(getattr(block, "text", "") for block in result.content)
            missing = [word for word in (call.param, *call.expect) if not names(words, word)]
            if missing:
                problems.append(f"{call.id}: message lacks {missing}: {words[:300]!r}")
    modern = arbitrary.eras["modern"]
    problems += arbitrary.check_after(modern, f"sdk-{era}")
    assert not problems, "\n".join(problems)


def test_the_corpus_left_the_data_unchanged(
    arbitrary: Target, typed: Target, default: Target, read_only: Target
) -> None:
    """The collections, point count and every (id, document, metadata, expiry) as before the corpus; no case changed
    them on the way."""
    for target in (arbitrary, typed, default, read_only):
        for era in target.eras.values():
            assert fingerprint(era, COLLECTION) == target.baseline
        assert not target.changed, f"these cases changed the stored data (restored since): {target.changed}"
