"""In-process fixtures: the real model, the scheduler, and one store per engine.

`engine` runs each store test against both backends behind the seam: Qdrant Edge (the
embedded default) and `AsyncQdrantClient` (here through qdrant-client's local mode, which
is how it reads the folders earlier releases wrote). With QDRANT_TEST_URL set (the
pipeline's full-stack mode, against the real `qdrant/qdrant` image) a third run uses it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from qdrant_mcp_memory.backends import Backend
from qdrant_mcp_memory.backends.edge import EdgeBackend, EmbeddedConfig
from qdrant_mcp_memory.backends.remote import RemoteBackend, RemoteConfig
from qdrant_mcp_memory.embeddings import FastEmbedModel, Kind
from qdrant_mcp_memory.scheduler import EmbeddingScheduler
from qdrant_mcp_memory.settings import FilterableField
from qdrant_mcp_memory.sparse import Bm25Encoder
from qdrant_mcp_memory.store import QdrantStore, StoreConfig

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
VECTOR = "fast-all-minilm-l6-v2"
ENGINES = ["edge", "local-mode", *(["qdrant-server"] if os.environ.get("QDRANT_TEST_URL") else [])]

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

    def load(self) -> int:
        return self.dimension

    def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        return self.model.embed(kind, texts)


@pytest.fixture(scope="session")
def model() -> LoadedModel:
    fastembed = FastEmbedModel(MODEL)
    return LoadedModel(fastembed, fastembed.load())


@pytest.fixture
async def scheduler(model: LoadedModel) -> AsyncIterator[EmbeddingScheduler]:
    embeddings = EmbeddingScheduler(model, document_workers=2)
    async with embeddings.running():
        yield embeddings


def make_backend(engine: str, folder: Path) -> Backend:
    if engine == "edge":
        return EdgeBackend(EmbeddedConfig(folder / "edge"))
    if engine == "local-mode":
        return RemoteBackend(RemoteConfig(path=str(folder / "local")))
    # A real Qdrant server: each test gets collections of its own through unique names.
    return RemoteBackend(RemoteConfig(url=os.environ["QDRANT_TEST_URL"], api_key=os.environ.get("QDRANT_TEST_API_KEY")))


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(engine: str, scheduler: EmbeddingScheduler, tmp_path: Path) -> StoreFactory:
    """A factory: `async with open_store(hybrid=True, filterable=[...]) as store:`; data stays in tmp_path."""

    @asynccontextmanager
    async def opened(hybrid: bool = False, filterable: Sequence[FilterableField] = ()) -> AsyncIterator[QdrantStore]:
        backend = make_backend(engine, tmp_path)
        config = StoreConfig(vector_name=VECTOR, filterable=tuple(filterable), hybrid=hybrid)
        async with backend.running():
            yield QdrantStore(backend, scheduler, config, Bm25Encoder())

    return opened


@pytest.fixture
async def store(open_store: StoreFactory) -> AsyncIterator[QdrantStore]:
    async with open_store() as opened:
        yield opened


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Collection names no other test (or earlier run against a shared server) uses."""
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"
