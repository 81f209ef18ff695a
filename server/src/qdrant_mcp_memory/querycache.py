"""Recent query vectors, so that a query asked again skips the model.

A find's query is embedded on every call, and the embedding is most of a find's CPU. Clients
repeat queries word for word (an agent that looks up the same preference at the start of every
conversation, a retry, several sessions asking alike): those get the vector they got before.

The key is the exact text and the model's name: a model gives the same vector for the same
text, so an entry is never stale. Only queries are kept: a document is embedded once, when it
is stored. The cache is bounded by entries, least recently used out first; a vector is kept as
an array of doubles (3 KiB for 384 dimensions): 1024 entries of short queries hold about 3 MB,
and at most about 20 MB were every query the longest allowed (4096 characters).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Sequence

from .embeddings import Embedder


class QueryCache:
    """An `Embedder` that answers repeated queries from memory and passes everything else on."""

    def __init__(self, embedder: Embedder, entries: int) -> None:
        self.embedder = embedder
        self.entries = entries
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[tuple[str, str], array[float]] = OrderedDict()

    @property
    def model_name(self) -> str:
        return self.embedder.model_name

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    async def embed_query(self, text: str) -> list[float]:
        key = (self.embedder.model_name, text)
        kept = self._vectors.get(key)
        if kept is not None:
            self._vectors.move_to_end(key)
            self.hits += 1
            return kept.tolist()  # a new list each time: callers may keep or change theirs
        self.misses += 1
        vector = await self.embedder.embed_query(text)
        self._vectors[key] = array("d", vector)
        if len(self._vectors) > self.entries:
            self._vectors.popitem(last=False)
        return vector

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embedder.embed_documents(texts)
