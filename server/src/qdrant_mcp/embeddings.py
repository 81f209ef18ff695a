"""Text embeddings with fastembed, loaded once, shared by every call.

Concurrent calls are coalesced: while one ONNX run is in flight, the texts of calls that
arrive meanwhile queue up and go through the next run together. One run over eight short
queries costs far less than eight runs, and a lone call waits for nobody.
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
# Bounds the texts coalesced into one worker-thread hop; a larger backlog takes several.
MAX_BATCH_TEXTS = 256
# Texts per ONNX run. Every text in a run is padded to the longest, and activations grow with
# run size: small runs over length-sorted texts waste the least (measured in bench/).
ONNX_BATCH = 32


class EmbeddingModelError(RuntimeError):
    """The model cannot be loaded (missing from the cache while offline, unknown name)."""


@dataclass
class _Pending:
    kind: Kind
    texts: Sequence[str]
    done: anyio.Event = field(default_factory=anyio.Event)
    vectors: list[list[float]] | None = None
    error: BaseException | None = None


class FastEmbedEmbedder:
    """Embeds queries and documents with one fastembed `TextEmbedding`."""

    def __init__(self, model_name: str, threads: int | None = None) -> None:
        self.model_name = model_name
        self.threads = threads
        self._model = None
        self.dimension: int | None = None
        self._queue: list[_Pending] = []
        self._running = False

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model (blocking: seconds, not for the event loop)."""
        # onnxruntime reports usage to its vendor unless told not to; a memory server should not.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        from fastembed.text.text_embedding import TextEmbedding

        try:
            model = TextEmbedding(self.model_name, threads=self.threads)
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
        if self._running:
            try:
                await pending.done.wait()
            except BaseException:  # cancelled: leave the queue as if this call never came
                promoted = pending.done.is_set() and pending.vectors is None and pending.error is None
                if pending in self._queue:
                    self._queue.remove(pending)
                if promoted:
                    self._hand_over()
                raise
            if pending.vectors is None and pending.error is None:
                # Woken without a result: the previous driver handed the queue over.
                await self._drive(pending)
        else:
            self._running = True
            await self._drive(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.vectors is not None
        return pending.vectors

    async def _drive(self, own: _Pending) -> None:
        """Run batches until `own` is answered, then hand the rest of the queue to its oldest caller."""
        try:
            while own.vectors is None and own.error is None:
                batch = self._take_batch()
                texts = [text for item in batch for text in item.texts]
                try:
                    vectors = await anyio.to_thread.run_sync(self.run_batch, batch[0].kind, texts)
                except Exception as exc:  # every caller in the batch gets the error
                    for item in batch:
                        item.error = exc
                        item.done.set()
                    continue
                start = 0
                for item in batch:
                    item.vectors = vectors[start : start + len(item.texts)]
                    start += len(item.texts)
                    item.done.set()
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._queue:
            self._queue[0].done.set()
        else:
            self._running = False

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
