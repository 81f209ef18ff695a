"""Seed the demo collection, then keep gentle, bounded MCP traffic flowing so the dashboards move.

The compose `demo` service's default command (profile `demo` only; nothing else runs it):

    docker compose --profile demo up -d                        # seeds, then traffic until stopped
    docker compose --profile demo run --rm -e DEMO_DURATION=60 demo   # seeds, 60 s of traffic, exits

What it sends, one tool call at a time over one MCP session (see client.py for the connection):
- qdrant-find (78 %): natural questions about the seeded memories and the notes it stored;
- qdrant-store (18 %): short notes made from templates, metadata {"source": "demo-traffic"};
- qdrant-collection-info (3 %) and qdrant-list-collections (1 %);
- qdrant-delete: housekeeping, never at random (see Bounds);
- a deliberate error with probability DEMO_ERROR_RATE: a qdrant-find asking for `limit: 0`,
  which the tool's schema refuses (limit is 1..100). It keeps the error panels, the failed
  traces and the error_type breakdown from sitting empty in a demo where nothing fails.
  It is aimed at the busiest tool so that tool's error ratio stays near DEMO_ERROR_RATE
  (2 % of calls, about 2.5 % of the finds), well under McpToolErrorRateHigh's 10 %: the
  alert stays quiet. Each one is logged as "deliberate"; DEMO_ERROR_RATE=0 turns them off.
The first calls go through every kind once, so every panel has data within a minute.
Against a read-only server (QDRANT_READ_ONLY=true) seeding is skipped and only reads are sent.

Bounds:
- never more than one call in flight; DEMO_RATE calls per second on average, each pause
  drawn from 0.5-1.5 x 1/DEMO_RATE and measured from the previous call's start;
- at most DEMO_MAX_NOTES notes of its own: each note gets an id chosen here, tracked before
  the call (a note whose answer was lost still counts), and when the cap is reached the
  oldest tenth is deleted by id before the next store. At start, notes an earlier run left
  (metadata source=demo-traffic) are deleted, so restarts do not add up either. The seeded
  samples are never deleted.

Failures: a call that fails (tool error, timeout, connection lost, server restarting) is
logged and made again later, after a pause that doubles with each failure in a row (1 s up
to 30 s), reconnecting first when the connection was the problem; a call is given up after
3 attempts. SIGTERM or SIGINT stops it: a call in flight gets 3 s to finish, then exit 0.

Env (besides client.py's DEMO_MCP_URL, DEMO_TOKEN_FILE, DEMO_COLLECTION, DEMO_TIMEOUT):
    DEMO_RATE          calls per second on average (default 0.5; more than 0, at most 50)
    DEMO_DURATION      seconds of traffic after seeding; 0 = until stopped (default 0)
    DEMO_MAX_NOTES     notes of its own kept at most (default 100; 1..10000)
    DEMO_ERROR_RATE    share of calls that fail on purpose (default 0.02; 0..0.2)
    DEMO_SEED          false = do not seed first (default true)
    DEMO_RANDOM_SEED   integer seed of the random mix (default: a fresh one each run)

Output: one line per call on stdout. Exit status: 0 when stopped by a signal or after
DEMO_DURATION; 1 when seeding failed 5 times in a row or the token was refused (HTTP 401), or
when no traffic call succeeded; 2 for a bad setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import client
import seed

SOURCE = "demo-traffic"  # metadata.source of every note this generator stores
WEIGHTS = {"find": 78, "store": 18, "info": 3, "list": 1}
WARM_UP = ("find", "store", "info", "find", "list", "error")
ATTEMPTS = 3  # per call
SEED_ATTEMPTS = 5
MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 3.0
TOOLS = {
    "find": "qdrant-find",
    "error": "qdrant-find",
    "store": "qdrant-store",
    "trim": "qdrant-delete",
    "cleanup": "qdrant-delete",
    "info": "qdrant-collection-info",
    "list": "qdrant-list-collections",
}

# Questions a user could ask about the seeded samples (seed.SAMPLES) and the notes below.
QUESTIONS = [
    "which database stores vectors?",
    "what is Qdrant written in?",
    "what does Qdrant store with each point?",
    "how do AI assistants call tools on a server?",
    "what protocol does MCP use?",
    "where can I see the server's error rate?",
    "which dashboard shows request latency?",
    "what should I do on Fridays?",
    "when do the office plants need water?",
    "how many dimensions does the embedding have?",
    "which model turns sentences into vectors?",
    "when is the standup?",
    "what does Priya like to drink?",
    "what do we need to buy for the kitchen?",
    "what happened to the search latency?",
    "what should I read before the review?",
    "who is on call this week?",
    "what did I note about the release?",
]
NOTE_TEMPLATES = [
    ("meetings", "The standup moves to {time} on {day}."),
    ("people", "{person} prefers {drink} in the morning."),
    ("chores", "Buy {item} for the office kitchen before {day}."),
    ("observability", "The find latency on the {service} dashboard spiked at {time} on {day}."),
    ("reading", "Read the {doc} before {day}'s review."),
    ("people", "{person} is on call until {day}."),
    ("release", "Release notes for {service} are due on {day} at {time}."),
]
FILLERS = {
    "time": ["9:15", "9:30", "10:00", "10:30", "11:45", "14:00", "16:30"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "person": ["Priya", "Jonas", "Amara", "Luis", "Mei", "Tomasz"],
    "drink": ["green tea", "an oat flat white", "espresso", "sparkling water"],
    "item": ["oat milk", "coffee beans", "dish soap", "paper towels", "lemons"],
    "service": ["MCP server", "Qdrant", "Grafana", "collector"],
    "doc": ["design doc", "incident report", "capacity plan", "API changelog"],
}


class SettingError(ValueError):
    """A DEMO_* variable has a value the generator cannot use."""


def _number(
    env: Mapping[str, str], name: str, default: float, low: float, high: float, *, low_open: bool = False
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None
    if not (low < value <= high if low_open else low <= value <= high):
        bound = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise SettingError(f"{name}={raw!r} must be {bound} and at most {high:g}")
    return value


@dataclass(frozen=True)
class Settings:
    rate: float = 0.5
    duration: float = 0.0
    max_notes: int = 100
    error_rate: float = 0.02
    seed: bool = True
    random_seed: int | None = None
    timeout: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        max_notes = _number(env, "DEMO_MAX_NOTES", 100, 1, 10_000)
        if max_notes != int(max_notes):
            raise SettingError(f"DEMO_MAX_NOTES={env['DEMO_MAX_NOTES']!r} must be a whole number")
        seed_flag = env.get("DEMO_SEED", "").strip().lower() or "true"
        if seed_flag not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingError(f"DEMO_SEED={seed_flag!r} must be true or false")
        random_seed = env.get("DEMO_RANDOM_SEED", "").strip()
        if random_seed and not random_seed.lstrip("-").isdigit():
            raise SettingError(f"DEMO_RANDOM_SEED={random_seed!r} must be an integer")
        return cls(
            rate=_number(env, "DEMO_RATE", 0.5, 0, 50, low_open=True),
            duration=_number(env, "DEMO_DURATION", 0, 0, 365 * 86_400),
            max_notes=int(max_notes),
            error_rate=_number(env, "DEMO_ERROR_RATE", 0.02, 0, 0.2),
            seed=seed_flag in ("true", "1", "yes"),
            random_seed=int(random_seed) if random_seed else None,
            timeout=_number(env, "DEMO_TIMEOUT", 60, 0, 3600, low_open=True),
        )


@dataclass
class Call:
    kind: str
    arguments: dict[str, Any]
    what: str  # how the log line names it
    ids: list[str] = field(default_factory=list)  # the note stored, or the notes deleted
    attempts: int = 0

    @property
    def tool(self) -> str:
        return TOOLS[self.kind]


class Traffic:
    def __init__(self, settings: Settings, stop: asyncio.Event, say: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.stop = stop
        self.rng = random.Random(settings.random_seed)  # noqa: S311  # a traffic mix, not a secret
        self.say = say or (lambda line: print(line, flush=True))
        self.notes: OrderedDict[str, None] = OrderedDict()  # ids of our notes, oldest first
        self.counts: Counter[str] = Counter()
        self.number = 0  # calls made (attempts included)
        self.succeeded = 0
        self.failed = 0
        self.streak = 0  # failures in a row
        self.retry: Call | None = None
        self.warm_up = deque(kind for kind in WARM_UP if kind != "error" or settings.error_rate > 0)
        self.seeded = not settings.seed
        self.cleaned = False
        self.started: float | None = None

    # --- the main loop -----------------------------------------------------------------------

    async def run(self) -> int:
        seed_failures = 0
        self.say(f"demo: connecting to {client.describe()}")
        while not self.stop.is_set() and not self._past_deadline():
            try:
                async with client.connect(self.settings.timeout) as demo:
                    if not self.seeded:
                        seed.introduce(demo, self.say)
                        if demo.writable:
                            await seed.seed(demo, self.say)
                        else:
                            self.say("demo: read-only server (no store tools): seeding skipped, sending reads only")
                        self.seeded = True
                    await self._traffic(demo)
                break
            except Exception as exc:  # connection trouble: reconnect after a pause
                self.streak += 1
                if not self.seeded:
                    seed_failures += 1
                    if isinstance(seed.cause(exc), client.Refused) or seed_failures >= SEED_ATTEMPTS:
                        self.say(f"demo: FAILED: seeding failed (attempt {seed_failures}): {seed.failure(exc)}")
                        return 1
                    delay = self._backoff()
                    self.say(f"demo: seeding failed ({seed.failure(exc)}); attempt {seed_failures} of {SEED_ATTEMPTS}")
                else:
                    delay = self._backoff()
                    self.say(f"traffic: connection lost ({seed.failure(exc)}); reconnecting in {delay:g} s")
                await self._pause(delay)
        return self.finish()

    def finish(self) -> int:
        kinds = ", ".join(f"{kind} {self.counts[kind]}" for kind in ("find", "store", "delete", "info", "list"))
        elapsed = time.monotonic() - self.started if self.started is not None else 0.0
        self.say(
            f"traffic: stopped after {self.number} calls in {elapsed:.0f} s ({kinds}, deliberate errors "
            f"{self.counts['error']}); {self.failed} failed; {len(self.notes)} notes kept "
            f"(cap {self.settings.max_notes})"
        )
        if not self.seeded:
            return 0 if self.stop.is_set() else 1
        return 1 if self.failed and not self.succeeded and not self.stop.is_set() else 0

    async def _traffic(self, demo: client.Client) -> None:
        if self.started is None:
            self.started = time.monotonic()
            period = "until stopped" if not self.settings.duration else f"for {self.settings.duration:g} s"
            self.say(
                f"traffic: {self.settings.rate:g} calls/s {period}, at most {self.settings.max_notes} notes, "
                f"deliberate errors {self.settings.error_rate:.0%} of calls"
            )
        next_at = time.monotonic()
        while await self._wait_until(next_at):
            call = self.retry or self._plan(demo)
            self.retry = None
            start = time.monotonic()
            next_at = start + self.rng.uniform(0.5, 1.5) / self.settings.rate
            if await self._make(demo, call):
                self.streak = 0
            else:
                self.streak += 1
                next_at = max(next_at, time.monotonic() + self._backoff())

    # --- one call ----------------------------------------------------------------------------

    async def _make(self, demo: client.Client, call: Call) -> bool:
        """Make the call and log it; False after a tool error (retried later); raises when the
        connection is the problem (the caller reconnects, then the call is made again)."""
        self.number += 1
        call.attempts += 1
        start = time.perf_counter()
        try:
            result = await demo.call(call.tool, call.arguments)
        except Exception as exc:
            self._failed(call, seed.failure(exc), start)
            raise
        ms = (time.perf_counter() - start) * 1000
        if call.kind == "error":
            self.counts["error"] += 1
            self.succeeded += 1
            outcome = "rejected as intended" if result.is_error else "UNEXPECTEDLY accepted"
            self._log(call, f"{outcome}: {_first_line(client.text(result))}", ms)
            return True
        if result.is_error:
            self._failed(call, client.text(result), start)
            return False
        self.succeeded += 1
        self._log(call, self._done(call, result.structured_content or {}), ms)
        return True

    def _done(self, call: Call, content: dict[str, Any]) -> str:
        """Book-keeping after a call that worked; returns what the log line says about it."""
        kind = call.kind
        self.counts["delete" if kind in ("trim", "cleanup") else kind] += 1
        if kind == "find":
            hits = content.get("hits") or []
            if not hits:
                return "no hits" if content.get("collection_exists", True) else "collection does not exist yet"
            best = hits[0]
            return f"{len(hits)} hits, best {best.get('score', 0):.2f} {_clip(str(best.get('document', '')), 48)!r}"
        if kind == "store":
            return f"stored as {call.ids[0]}; notes {len(self.notes)}/{self.settings.max_notes}"
        if kind == "trim":
            for note in call.ids:
                self.notes.pop(note, None)
            return f"deleted {content.get('deleted', '?')}; notes {len(self.notes)}/{self.settings.max_notes}"
        if kind == "cleanup":
            self.cleaned = True
            return f"deleted {content.get('deleted', '?')} note(s) an earlier run left"
        if kind == "info":
            return f"{content.get('points_count', '?')} points, status {content.get('status', '?')}"
        return f"{len(content.get('collections') or [])} collections"

    def _failed(self, call: Call, reason: str, start: float) -> None:
        self.failed += 1
        ms = (time.perf_counter() - start) * 1000
        if call.attempts < ATTEMPTS:
            self.retry = call
            then = f"will retry (attempt {call.attempts} of {ATTEMPTS})"
        else:
            then = f"given up after {ATTEMPTS} attempts"
            if call.kind == "cleanup":
                self.cleaned = True  # traffic goes on; the cap still holds for this run's notes
        self._log(call, f"FAILED: {_first_line(reason)}; {then}", ms)

    def _log(self, call: Call, outcome: str, ms: float) -> None:
        clock = time.strftime("%H:%M:%S")
        self.say(f"traffic: {clock} #{self.number} {call.what} -> {outcome} ({ms:.0f} ms)")

    # --- what to send next -------------------------------------------------------------------

    def _plan(self, demo: client.Client) -> Call:
        writable = demo.writable
        if writable and not self.cleaned:
            return Call("cleanup", {"metadata_match": {"source": SOURCE}}, f"delete notes with source={SOURCE}")
        kind = self.warm_up.popleft() if self.warm_up else self._random_kind()
        if kind == "store" and not writable:
            kind = "find"
        if kind == "store" and len(self.notes) >= self.settings.max_notes:
            return self._trim()
        if kind == "store":
            return self._store()
        if kind == "info" and "qdrant-collection-info" in demo.schemas:
            return Call("info", {}, "collection-info")
        if kind == "list" and "qdrant-list-collections" in demo.schemas:
            return Call("list", {}, "list-collections")
        question = self.rng.choice(QUESTIONS)
        if kind == "error":
            # Deliberately invalid (limit is 1..100): see the module docstring for why.
            return Call("error", {"query": question, "limit": 0}, "find limit=0 (deliberate error)")
        return Call("find", {"query": question, "limit": self.rng.choice((3, 5))}, f"find {question!r}")

    def _random_kind(self) -> str:
        if self.rng.random() < self.settings.error_rate:
            return "error"
        return self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]

    def _store(self) -> Call:
        topic, template = self.rng.choice(NOTE_TEMPLATES)
        note = template.format(**{key: self.rng.choice(values) for key, values in FILLERS.items()})
        note_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.notes[note_id] = None  # tracked before the call: a lost answer cannot leak a note
        arguments = {"information": note, "metadata": {"source": SOURCE, "topic": topic, "kind": "note"}, "id": note_id}
        return Call("store", arguments, f"store {_clip(note, 60)!r}", ids=[note_id])

    def _trim(self) -> Call:
        cap = self.settings.max_notes
        count = max(1, cap // 10, len(self.notes) - cap + 1)
        oldest = list(self.notes)[:count]
        return Call("trim", {"ids": oldest}, f"delete the {len(oldest)} oldest notes (cap {cap})", ids=oldest)

    # --- time --------------------------------------------------------------------------------

    def _backoff(self) -> float:
        """1 s after the first failure in a row, doubling up to 30 s."""
        return min(MAX_BACKOFF_S, 2.0 ** max(0, self.streak - 1))

    def _deadline(self) -> float | None:
        if not self.settings.duration or self.started is None:
            return None
        return self.started + self.settings.duration

    def _past_deadline(self) -> bool:
        deadline = self._deadline()
        return deadline is not None and time.monotonic() >= deadline

    async def _wait_until(self, when: float) -> bool:
        """Sleep until `when`; False when stopped or the duration is over first."""
        deadline = self._deadline()
        if deadline is not None and when >= deadline:
            await self._pause(deadline - time.monotonic())
            return False
        return await self._pause(when - time.monotonic())

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to `seconds` (never past the deadline); False when stopped meanwhile."""
        deadline = self._deadline()
        if deadline is not None:
            seconds = min(seconds, deadline - time.monotonic())
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), seconds)
        return not self.stop.is_set()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _clip(" ".join(lines[:3]), 160) if lines else "(no text)"


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


async def _main(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signame: str) -> None:
        if not stop.is_set():
            print(f"traffic: {signame}: stopping", flush=True)
            stop.set()
            # Nothing waits longer than a call in flight; give that one a moment, then cancel it.
            if task is not None:
                loop.call_later(STOP_GRACE_S, task.cancel)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signal.Signals(signum).name)
    traffic = Traffic(settings, stop)
    try:
        return await traffic.run()
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        traffic.say("traffic: the call in flight did not finish in time: abandoned")
        return traffic.finish()


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingError as exc:
        print(f"traffic: {exc}", file=sys.stderr)
        return 2
    # The SDK logs each transport failure with a traceback; this script logs one line per call.
    logging.basicConfig(level=logging.CRITICAL, format="%(name)s: %(message)s")
    return asyncio.run(_main(settings))


if __name__ == "__main__":
    sys.exit(main())
