"""In-process fixtures: the real model, the scheduler, and one store per engine.

`engine` runs each store test against both backends behind the seam: Qdrant Edge (the
embedded default) and `AsyncQdrantClient` (here through qdrant-client's local mode, which
is how it reads the folders earlier releases wrote). A third run goes through a Qdrant
server's REST API: the real `qdrant/qdrant` image when QDRANT_TEST_URL is set (the
pipeline's full-stack mode), otherwise the test stand-in (tests/standin: Qdrant's engine
behind Qdrant's REST API), started once for the session. QDRANT_STANDIN=0 skips that run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from store_engines import ENGINES, MODEL, SERVER_ENGINES, VECTOR, LoadedModel, StoreFactory

from qdrant_mcp_memory.backends import DEFAULT_FUSION, Backend, Fusion
from qdrant_mcp_memory.backends.edge import EdgeBackend, EmbeddedConfig
from qdrant_mcp_memory.backends.remote import RemoteBackend, RemoteConfig
from qdrant_mcp_memory.embeddings.fastembed import FastEmbedModel
from qdrant_mcp_memory.scheduler import EmbeddingScheduler
from qdrant_mcp_memory.settings import FilterableField
from qdrant_mcp_memory.sparse import Bm25Encoder
from qdrant_mcp_memory.store import QdrantStore, StoreConfig


@pytest.fixture(scope="session")
def model(offline_model: Path) -> LoadedModel:
    fastembed = FastEmbedModel(MODEL, offline_model)
    return LoadedModel(fastembed, fastembed.load_blocking())


@pytest.fixture
async def scheduler(model: LoadedModel) -> AsyncIterator[EmbeddingScheduler]:
    embeddings = EmbeddingScheduler(model, document_workers=2)
    async with embeddings.running():
        yield embeddings


@pytest.fixture(scope="session")
def qdrant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str | None]]:
    """URL and API key of a Qdrant server: QDRANT_TEST_URL's, or the stand-in's, started here."""
    if os.environ.get("QDRANT_TEST_URL"):
        yield os.environ["QDRANT_TEST_URL"], os.environ.get("QDRANT_TEST_API_KEY")
        return
    from standin import spawn_standin

    standin = spawn_standin(tmp_path_factory.mktemp("qdrant-standin"))
    yield standin.url, standin.api_key
    standin.stop()


def make_backend(engine: str, folder: Path, server: tuple[str, str | None] | None = None) -> Backend:
    if engine == "edge":
        return EdgeBackend(EmbeddedConfig(folder / "edge"))
    if engine == "local-mode":
        return RemoteBackend(RemoteConfig(path=str(folder / "local")))
    # A Qdrant server: each test gets collections of its own through unique names.
    assert server is not None, engine
    return RemoteBackend(RemoteConfig(url=server[0], api_key=server[1]))


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(
    engine: str, scheduler: EmbeddingScheduler, tmp_path: Path, request: pytest.FixtureRequest
) -> StoreFactory:
    """A factory: `async with open_store(hybrid=True, fusion=..., filterable=[...]) as store:`; data in tmp_path."""
    server = request.getfixturevalue("qdrant_server") if engine in SERVER_ENGINES else None

    @asynccontextmanager
    async def opened(
        hybrid: bool = False, filterable: Sequence[FilterableField] = (), fusion: Fusion = DEFAULT_FUSION
    ) -> AsyncIterator[QdrantStore]:
        backend = make_backend(engine, tmp_path, server)
        config = StoreConfig(vector_name=VECTOR, filterable=tuple(filterable), hybrid=hybrid, fusion=fusion)
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
