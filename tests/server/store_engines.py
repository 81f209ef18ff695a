"""What the in-process store tests share besides fixtures: the engines they run on, the model's
names, and the session's loaded model (a module of its own: test files import it by name,
which a conftest cannot safely be when several test folders each have one)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from qdrant_mcp_memory.backends import Backend
from qdrant_mcp_memory.embeddings import Kind
from qdrant_mcp_memory.embeddings.fastembed import FastEmbedModel
from qdrant_mcp_memory.store import QdrantStore

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
VECTOR = "fast-all-minilm-l6-v2"
if os.environ.get("QDRANT_TEST_URL"):
    SERVER_ENGINES = ["qdrant-server"]
elif os.environ.get("QDRANT_STANDIN", "1") != "0":
    SERVER_ENGINES = ["qdrant-standin"]
else:
    SERVER_ENGINES = []
ENGINES = ["edge", "local-mode", *SERVER_ENGINES]

BackendFactory = Callable[[Path], Backend]
StoreFactory = Callable[..., AbstractAsyncContextManager[QdrantStore]]


class LoadedModel:
    """The real model, loaded once for the session: each scheduler's `load` reuses it."""

    def __init__(self, model: FastEmbedModel, dimension: int) -> None:
        self.model = model
        self.dimension = dimension

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def description(self) -> str:
        return self.model.description

    def running(self) -> AbstractAsyncContextManager[None]:
        return self.model.running()

    async def load(self) -> int:
        return self.dimension

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        return await self.model.embed(kind, texts)

    def embed_blocking(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        return self.model.embed_blocking(kind, texts)
