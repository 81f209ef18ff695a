"""Text embeddings with fastembed, loaded once, shared by every call.

Each ONNX run is single-threaded, and up to `parallel` runs go at once (one per core by
default), on the same session: ONNX Runtime's multi-threaded runs spin between parallel
sections, which on a small machine burns the core the event loop needs. Concurrent calls
are coalesced: texts that arrive while all runs are busy queue up and go through the next
run together, so eight short queries cost one run, and a lone call waits for nobody. A
large call is split across the parallel runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.to_thread

log = logging.getLogger(__name__)

Kind = Literal["query", "document"]
# Bounds the texts coalesced into one driver pass; a larger backlog takes several.
MAX_BATCH_TEXTS = 256
# Texts per ONNX run. Every text in a run is padded to the longest, and activations grow with
# run size: small runs over length-sorted texts waste the least (measured in bench/).
ONNX_BATCH = 32
MAX_PARALLEL = 4


def default_parallelism() -> int:
    """Cores this process may run on, at most MAX_PARALLEL."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_PARALLEL))


class EmbeddingModelError(RuntimeError):
    """The model cannot be loaded (missing from the cache while offline, unknown name)."""


@dataclass
class _Pending:
    """One call's texts, waiting in the queue or in a run."""

    kind: Kind
    texts: Sequence[str]
    wake: anyio.Event = field(default_factory=anyio.Event)  # set with a result, or to hand over a driver slot
    vectors: list[list[float]] | None = None
    error: BaseException | None = None
    holds_slot: bool = False  # a finishing driver handed its slot to this call

    @property
    def answered(self) -> bool:
        return self.vectors is not None or self.error is not None

    def answer(self, vectors: list[list[float]] | None, error: BaseException | None = None) -> None:
        self.vectors, self.error = vectors, error
        self.wake.set()


class FastEmbedEmbedder:
    """Embeds queries and documents with one fastembed `TextEmbedding`."""

    def __init__(self, model_name: str, parallel: int | None = None) -> None:
        self.model_name = model_name
        self.parallel = parallel or default_parallelism()
        self._model = None
        self.dimension: int | None = None
        self._queue: list[_Pending] = []
        self._drivers = 0

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model (blocking: seconds, not for the event loop)."""
        # onnxruntime reports usage to its vendor unless told not to; a memory server should not.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        from fastembed.text.text_embedding import TextEmbedding

        try:
            model = TextEmbedding(self.model_name, threads=1)
        except ValueError as exc:
            cache = os.environ.get("FASTEMBED_CACHE_PATH", "<fastembed default temp dir>")
            hint = (
                " HF_HUB_OFFLINE=1 forbids downloading it: bake it into the image or point FASTEMBED_CACHE_PATH"
                " at a cache that holds it."
                if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
                else ""
            )
            raise EmbeddingModelError(
                f"cannot load embedding model {self.model_name!r} (FASTEMBED_CACHE_PATH={cache}): "
                f"{str(exc).rstrip('.')}.{hint}"
            ) from None
        # One warm-up run: pays ONNX's first-run cost now and tells the dimension.
        self.dimension = len(next(iter(model.embed(["warm-up"]))))
        self._model = model
        log.info("embedding model loaded", extra={"model": self.model_name, "dimension": self.dimension})

    async def embed_query(self, text: str) -> list[float]:
        return (await self._submit("query", [text]))[0]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._submit("document", texts)

    async def _submit(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        if self._model is None:
            raise EmbeddingModelError(f"embedding model {self.model_name!r} is not loaded yet")
        pending = _Pending(kind, texts)
        self._queue.append(pending)
        if self._drivers < self.parallel:
            self._drivers += 1
            pending.holds_slot = True
            await self._drive(pending)
        try:
            while not pending.answered:
                await pending.wake.wait()
                if not pending.answered:  # woken to drive, with the slot of a finished driver
                    pending.wake = anyio.Event()
                    await self._drive(pending)
        except BaseException:  # cancelled: leave the queue as if this call never came
            if pending in self._queue:
                self._queue.remove(pending)
            if pending.holds_slot:
                self._hand_over(pending)
            raise
        if pending.holds_slot:  # handed a slot, but answered by another driver's run first
            self._hand_over(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.vectors is not None
        return pending.vectors

    async def _drive(self, own: _Pending) -> None:
        """Run batches from the queue until `own` is answered (or in another driver's run), then pass the slot on."""
        try:
            while not own.answered and self._queue:
                batch = self._take_batch()
                texts = [text for item in batch for text in item.texts]
                # Shielded: the other callers in this batch need its result even if this one goes away.
                with anyio.CancelScope(shield=True):
                    try:
                        vectors = await self._embed(batch[0].kind, texts)
                    except Exception as exc:
                        for item in batch:
                            item.answer(None, exc)
                        continue
                start = 0
                for item in batch:
                    item.answer(vectors[start : start + len(item.texts)])
                    start += len(item.texts)
        finally:
            self._hand_over(own)

    def _hand_over(self, holder: _Pending) -> None:
        """Give `holder`'s driver slot to the oldest call still queued, or free it."""
        holder.holds_slot = False
        waiting = next((item for item in self._queue if not item.holds_slot), None)
        if waiting is None:
            self._drivers -= 1
        else:
            waiting.holds_slot = True
            waiting.wake.set()

    async def _embed(self, kind: Kind, texts: list[str]) -> list[list[float]]:
        """One worker thread per ONNX_BATCH-sized share of `texts`, up to `parallel` of them."""
        parts = min(self.parallel, -(-len(texts) // ONNX_BATCH))
        if parts <= 1:
            return await anyio.to_thread.run_sync(self.run_batch, kind, texts)
        # Dealt round-robin by length, so every part gets a like mix of long and short texts.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        shares = [order[part::parts] for part in range(parts)]
        vectors: list[list[float]] = [[] for _ in texts]

        async def run_share(share: list[int]) -> None:
            for index, vector in zip(
                share, await anyio.to_thread.run_sync(self.run_batch, kind, [texts[i] for i in share]), strict=True
            ):
                vectors[index] = vector

        async with anyio.create_task_group() as tasks:
            for share in shares:
                tasks.start_soon(run_share, share)
        return vectors

    def _take_batch(self) -> list[_Pending]:
        """The oldest call plus every queued call of the same kind, up to MAX_BATCH_TEXTS texts."""
        first = self._queue.pop(0)
        batch, size, rest = [first], len(first.texts), []
        for item in self._queue:
            if item.kind == first.kind and size + len(item.texts) <= MAX_BATCH_TEXTS:
                batch.append(item)
                size += len(item.texts)
            else:
                rest.append(item)
        self._queue = rest
        return batch

    def run_batch(self, kind: Kind, texts: list[str]) -> list[list[float]]:
        """One blocking ONNX run over `texts` (in a worker thread; telemetry observes it)."""
        model = self._model
        assert model is not None
        embed = model.query_embed if kind == "query" else model.passage_embed
        # Similar lengths share a run, so little attention is spent on padding. Each vector
        # depends on its own text only, so the order does not change any result.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        for index, vector in zip(order, embed([texts[i] for i in order], batch_size=ONNX_BATCH), strict=True):
            vectors[index] = vector.tolist()
        return vectors
