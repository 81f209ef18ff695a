"""Embedding work: a fixed set of workers reading bounded runs from two bounded lanes.

- Queries have a lane and a worker of their own, so a find never waits behind bulk writes;
  queries that arrive together share one run.
- Documents are cut into runs of bounded padded size (texts x longest text, in estimated
  word pieces): one large call never holds a worker for long, ONNX's working memory stays
  bounded whatever the input, and small calls that arrive together share a run. Runs are
  taken round-robin across calls, so a single store is not stuck behind a bulk one.
- Each lane holds a bounded number of texts; a call that would overflow it is refused at
  once (ServerBusy: "retry in a moment") instead of waiting without bound.
- A remote model that cannot be reached (at start or later) does not stop the server: calls
  that need it fail at once with its reason, and it is probed again in the background until
  it answers (what does not need embeddings keeps working meanwhile).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from .embeddings import EmbeddingModel, Kind, token_estimate
from .errors import EmbeddingUnavailable, ServerBusy

log = logging.getLogger(__name__)

# Texts per run: larger runs gained nothing in bench/ and pad more.
RUN_TEXTS = 32
# Padded word pieces per run (texts x longest): 16 texts of 256 pieces, or 32 of 128. Bounds the
# ONNX arena of each run (attention memory grows with texts x pieces^2).
RUN_TOKENS = 4096
MAX_DOCUMENT_WORKERS = 4
DOCUMENT_CAPACITY = 4_096  # texts waiting: four maximal store-many calls
QUERY_CAPACITY = 512
# Pauses between background probes of a model that cannot be reached; the last one repeats.
PROBE_PAUSES_S = (1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class RunBounds:
    """How work is cut into runs: at most `texts` texts and `tokens` padded word pieces (texts x longest)."""

    texts: int = RUN_TEXTS
    tokens: int = RUN_TOKENS


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (a container's `cpus:`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max` ("max 100000", or "150000 100000" for 1.5 CPUs) as CPUs; None when unlimited."""
    try:
        quota, period = text.split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except ValueError:
        return None


def _cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup may use per period; None when unlimited or not on Linux."""
    try:
        return parse_cpu_max(Path("/sys/fs/cgroup/cpu.max").read_text())
    except OSError:
        pass
    try:  # cgroup v1
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


@dataclass(eq=False)
class _Call:
    texts: Sequence[str]
    vectors: list[list[float]]
    remaining: int
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None
    abandoned: bool = False

    def deliver(self, indexes: Sequence[int], vectors: Sequence[list[float]]) -> None:
        for index, vector in zip(indexes, vectors, strict=True):
            self.vectors[index] = vector
        self.remaining -= len(indexes)
        if self.remaining == 0:
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.done.set()


@dataclass(eq=False)
class _Piece:
    call: _Call
    indexes: list[int]
    longest: int  # estimated word pieces of its longest text
    taken: bool = False


class _Lane:
    """Pieces waiting for a worker, ordered by (piece number within its call, arrival): round-robin."""

    def __init__(self, kind: Kind, capacity: int, bounds: RunBounds) -> None:
        self.kind = kind
        self.capacity = capacity
        self.bounds = bounds
        self.queued = 0  # texts in pieces not yet taken
        self._heap: list[tuple[int, int, _Piece]] = []
        self._arrival = itertools.count()
        self._ready = anyio.Condition()

    async def submit(self, texts: Sequence[str]) -> _Call:
        if self.queued + len(texts) > self.capacity and self.queued:
            raise ServerBusy(
                f"the server is busy: {self.queued} texts are waiting to be embedded (at most {self.capacity}); "
                "retry in a few seconds"
            )
        call = _Call(texts, [[] for _ in texts], len(texts))
        arrival = next(self._arrival)
        async with self._ready:
            for number, piece in enumerate(_cut(call, self.bounds)):
                heapq.heappush(self._heap, (number, arrival, piece))
                self.queued += len(piece.indexes)
            self._ready.notify_all()
        return call

    def abandon(self, call: _Call) -> None:
        """The caller went away: its waiting pieces are dropped (lazily) and stop counting."""
        call.abandoned = True
        for _, _, piece in self._heap:
            if piece.call is call and not piece.taken:
                piece.taken = True
                self.queued -= len(piece.indexes)

    async def take(self) -> list[_Piece]:
        """The next run: the first live piece, plus following pieces while the run stays within bounds."""
        async with self._ready:
            while True:
                batch = self._take_batch()
                if batch:
                    return batch
                await self._ready.wait()

    def _take_batch(self) -> list[_Piece]:
        batch: list[_Piece] = []
        texts = longest = 0
        while self._heap:
            piece = self._heap[0][2]
            if piece.taken:
                heapq.heappop(self._heap)
                continue
            size, widest = texts + len(piece.indexes), max(longest, piece.longest)
            if batch and (size > self.bounds.texts or size * widest > self.bounds.tokens):
                break
            heapq.heappop(self._heap)
            piece.taken = True
            self.queued -= len(piece.indexes)
            batch.append(piece)
            texts, longest = size, widest
        return batch

    def fail_waiting(self, error: BaseException) -> None:
        for _, _, piece in self._heap:
            if not piece.taken:
                piece.taken = True
                piece.call.fail(error)
        self._heap.clear()
        self.queued = 0


def _cut(call: _Call, bounds: RunBounds) -> list[_Piece]:
    """A call's texts, shortest first, in pieces that each fit one run."""
    costs = [token_estimate(text) for text in call.texts]
    pieces: list[_Piece] = []
    current: list[int] = []
    longest = 0
    for index in sorted(range(len(costs)), key=costs.__getitem__):
        widest = max(longest, costs[index])
        if current and (len(current) + 1 > bounds.texts or (len(current) + 1) * widest > bounds.tokens):
            pieces.append(_Piece(call, current, longest))
            current, widest = [], costs[index]
        current.append(index)
        longest = widest
    if current:
        pieces.append(_Piece(call, current, longest))
    return pieces


class EmbeddingScheduler:
    """Runs a model's embeddings on a fixed set of workers; implements `Embedder`.

    `document_workers` bounds the document runs in flight (one query run more may be in flight
    on its own lane): for the local model, runs on as many cores; for a remote one, requests.
    """

    def __init__(
        self,
        model: EmbeddingModel,
        document_workers: int | None = None,
        document_capacity: int = DOCUMENT_CAPACITY,
        query_capacity: int = QUERY_CAPACITY,
        bounds: RunBounds = RunBounds(),
    ) -> None:
        self.model = model
        self._dimension: int | None = None
        self.document_workers = document_workers or min(available_cpus(), MAX_DOCUMENT_WORKERS)
        self._lanes: dict[Kind, _Lane] = {
            "query": _Lane("query", query_capacity, bounds),
            "document": _Lane("document", document_capacity, bounds),
        }
        self._running = False
        self._problem: str | None = None
        self._troubled = anyio.Event()  # set while there is a problem: wakes the prober

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            if self._problem is not None:
                raise EmbeddingUnavailable(self._problem)
            raise ServerBusy(f"embedding model {self.model.name!r} is still loading; retry in a few seconds")
        return self._dimension

    @property
    def loaded(self) -> bool:
        return self._dimension is not None

    @property
    def problem(self) -> str | None:
        """Why the model cannot embed now (the last failure of the service); None when it can."""
        return self._problem

    @property
    def queued_texts(self) -> int:
        return sum(lane.queued for lane in self._lanes.values())

    @property
    def capacity(self) -> int:
        return sum(lane.capacity for lane in self._lanes.values())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Load the model, then run the workers; at exit, calls still waiting fail. A model that
        cannot be reached now does not hold the start: it is probed again in the background."""
        async with self.model.running():
            try:
                self._dimension = await self.model.load()
            except EmbeddingUnavailable as exc:
                self._record(exc)
            async with anyio.create_task_group() as workers:
                workers.start_soon(self._work, self._lanes["query"])
                for _ in range(self.document_workers):
                    workers.start_soon(self._work, self._lanes["document"])
                workers.start_soon(self._probe_while_troubled)
                self._running = True
                try:
                    yield
                finally:
                    self._running = False
                    for lane in self._lanes.values():
                        lane.fail_waiting(ServerBusy("the server is shutting down; retry on another instance"))
                    workers.cancel_scope.cancel()

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed("query", [text]))[0]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._embed("document", texts)

    async def _embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if not self._running:
            raise ServerBusy("the embedding workers are not running (the server is starting or stopping)")
        lane = self._lanes[kind]
        call = await lane.submit(texts)
        try:
            await call.done.wait()
        except BaseException:
            lane.abandon(call)
            raise
        if call.error is not None:
            raise call.error
        return call.vectors

    async def _work(self, lane: _Lane) -> None:
        while True:
            batch = await lane.take()
            live = [piece for piece in batch if not piece.call.abandoned]
            texts = [piece.call.texts[index] for piece in live for index in piece.indexes]
            if not texts:
                continue
            try:
                vectors = await self.model.embed(lane.kind, texts)
            except Exception as exc:
                if isinstance(exc, EmbeddingUnavailable):
                    self._record(exc)
                for piece in live:
                    piece.call.fail(exc)
                continue
            self._clear()
            start = 0
            for piece in live:
                piece.call.deliver(piece.indexes, vectors[start : start + len(piece.indexes)])
                start += len(piece.indexes)

    def _record(self, exc: EmbeddingUnavailable) -> None:
        if self._problem is None:
            log.warning("embeddings unavailable", extra={"reason": str(exc)})
        self._problem = str(exc)
        self._troubled.set()

    def _clear(self) -> None:
        if self._problem is not None:
            log.info("embeddings available again", extra={"model": self.model.name})
            self._problem = None
            self._troubled = anyio.Event()

    async def _probe_while_troubled(self) -> None:
        """While the model cannot be reached, load it again now and then: the first success
        makes it available (and tells the vector size, if the start could not)."""
        while True:
            await self._troubled.wait()
            for pause in itertools.chain(PROBE_PAUSES_S, itertools.repeat(PROBE_PAUSES_S[-1])):
                await anyio.sleep(pause)
                if self._problem is None:  # a call got through meanwhile
                    break
                try:
                    self._dimension = await self.model.load()
                except EmbeddingUnavailable as exc:
                    self._record(exc)
                    continue
                self._clear()
                break
