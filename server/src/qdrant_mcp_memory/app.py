"""The composition root: settings -> embeddings -> store -> tools -> MCP server -> HTTP app.

`Application` builds every layer once, hands each to telemetry to be observed, and owns
readiness: tool calls wait until the engine is open and the model is loaded (a local one: an
embedding service that is down does not hold the start; calls that need it fail with its reason).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from . import __version__
from .arguments import ArgumentGuard
from .backends import Backend, Fusion
from .backends.remote import RemoteBackend, RemoteConfig
from .embeddings import MAX_TOKENS, EmbeddingModel
from .embeddings.fastembed import FastEmbedModel
from .errors import ServiceError
from .health import HEALTH_PATHS, register_health
from .identity import INSTRUCTIONS, NAME
from .oauth import OAuth, OAuthGate, ScopeEnforcer, ScopeGuard
from .querycache import QueryCache
from .resources import register_resources
from .scheduler import EmbeddingScheduler, RunBounds
from .settings import Settings, default_local_path
from .sparse import Bm25Encoder
from .store import QdrantStore, StoreConfig
from .telemetry import Probes, Telemetry
from .tools import TOOL_ACCESS, Stores, register_tools
from .transport.auth import BearerTokenAuth
from .transport.guard import RequestGuard
from .transport.sessions import SessionLimiter
from .transport.streams import RequestTracker

log = logging.getLogger(__name__)

# Calls that arrive while the model loads wait this long for it before failing.
START_WAIT_S = 120.0
GATED_METHODS = frozenset({"tools/call", "resources/read"})


@dataclass(frozen=True)
class Storage:
    """The engine the settings select, and how to describe it."""

    backend: Backend
    url: str | None  # a Qdrant server's URL, for telemetry's server.address
    legacy_local_mode: bool = False


def select_storage(settings: Settings) -> Storage:
    """A Qdrant server for QDRANT_URL; otherwise the embedded engine (`:memory:` in a temporary folder,
    made once the engine opens).

    A QDRANT_LOCAL_PATH in qdrant-client's local-mode layout (written by the official server
    or by this server's earlier releases) keeps being served as it is, with a warning that
    names the migration command: it is never ignored or overwritten. One an in-place
    migration left unfinished is not served at all (ServiceError naming the command that
    finishes it).
    """
    from .backends.edge import EdgeBackend, EmbeddedConfig
    from .backends.root import folder_kind
    from .migrate import interrupted_migration

    remote = RemoteConfig(
        url=settings.qdrant_url if settings.qdrant_url != ":memory:" else None,
        api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
        shard_number=settings.shard_number,
        replication_factor=settings.replication_factor,
        write_consistency_factor=settings.write_consistency_factor,
    )
    if remote.url:
        return Storage(RemoteBackend(remote), remote.url)
    if settings.qdrant_url == ":memory:":
        return Storage(EdgeBackend(EmbeddedConfig.in_memory()), None)
    path = settings.qdrant_local_path or default_local_path()
    unfinished = interrupted_migration(path)
    if unfinished is not None:
        raise ServiceError(unfinished)
    if folder_kind(path) == "local-mode":
        return Storage(RemoteBackend(RemoteConfig(path=str(path))), None, legacy_local_mode=True)
    config = EmbeddedConfig(
        path, fsync=settings.embedded_fsync, fsync_interval_s=settings.embedded_fsync_interval_ms / 1000
    )
    return Storage(EdgeBackend(config), None)


def store_config(settings: Settings) -> StoreConfig:
    return StoreConfig(
        vector_name=settings.vector_name,
        filterable=tuple(settings.filterable_fields or ()),
        hybrid=settings.hybrid_search,
        fusion=Fusion(settings.hybrid_fusion, settings.rrf_weights),
        similarity_threshold=settings.similarity_threshold,
        document_key=settings.document_key,
        metadata_key=settings.metadata_key,
        tenants=settings.tenant_claim is not None,
    )


@dataclass(frozen=True)
class Embeddings:
    """The provider the settings select, and how the scheduler runs it."""

    model: EmbeddingModel
    url: str | None  # the service's URL, for telemetry's server.address
    document_workers: int | None  # None: one per available core
    bounds: RunBounds = field(default_factory=RunBounds)


def select_embeddings(settings: Settings) -> Embeddings:
    """fastembed in this process (the default), or a service speaking the OpenAI embeddings API."""
    if settings.embedding_provider == "fastembed":
        model = FastEmbedModel(
            settings.embedding_model, settings.embedding_cache_path, quantized=settings.embedding_quantized
        )
        return Embeddings(model, None, settings.embedding_threads)
    from .embeddings.openai import OpenAIEmbeddings, ServiceConfig

    assert settings.embedding_url is not None  # noqa: S101  # Settings requires it for this provider
    config = ServiceConfig(
        url=settings.embedding_url,
        model=settings.embedding_model,
        api_key=settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None,
        dimensions=settings.embedding_dimensions,
        timeout=settings.embedding_timeout,
        retries=settings.embedding_retries,
    )
    # One request per run of up to EMBEDDING_BATCH_SIZE texts: the service bounds its own memory,
    # so only the number of texts cuts runs. One request in flight is the query lane's.
    batch = settings.embedding_batch_size
    return Embeddings(
        OpenAIEmbeddings(config),
        settings.embedding_url,
        settings.embedding_max_requests - 1,
        RunBounds(texts=batch, tokens=batch * MAX_TOKENS),
    )


class StartGate(ServerMiddleware[Any]):
    """Tool calls and resource reads wait for the engine and the model's first load (health and tools/list do not)."""

    def __init__(self, application: Application) -> None:
        self.application = application

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method in GATED_METHODS and not self.application.ready:
            await self.application.wait_ready()
        return await call_next(ctx)


class Application:
    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        self.settings = settings
        self.telemetry = telemetry
        embeddings = select_embeddings(settings)
        self.scheduler = EmbeddingScheduler(
            telemetry.observe_model(embeddings.model, embeddings.url),
            embeddings.document_workers,
            bounds=embeddings.bounds,
        )
        storage = select_storage(settings)
        self.legacy_local_mode = storage.legacy_local_mode
        self.backend = telemetry.observe_backend(storage.backend, storage.url)
        self.store = QdrantStore(
            self.backend,
            telemetry.observe_embedder(self.scheduler),
            store_config(settings),
            Bm25Encoder(),
            telemetry.memory_events(),
        )
        embedder = telemetry.observe_embedder(self.scheduler)
        if settings.embedding_query_cache:
            embedder = QueryCache(embedder, settings.embedding_query_cache)
        self.store = QdrantStore(
            self.backend, embedder, store_config(settings), Bm25Encoder(), telemetry.memory_events()
        )
        self.mcp = MCPServer(NAME, version=__version__, instructions=INSTRUCTIONS, log_level=settings.log_level)
        # Every tool and resource reaches the store through `stores`: scoped to the caller's tenant when
        # MCP_TENANT_CLAIM is set. The unscoped store stays with the server (the background purge).
        stores = Stores(self.store, settings.tenant_claim)
        tools = register_tools(self.mcp, settings, stores)
        register_resources(self.mcp, stores)
        register_health(self.mcp, self)
        self.sessions: SessionLimiter | None = None
        self.requests: RequestTracker | None = None
        # Middleware runs in list order, inside the SDK's own span: telemetry first, so it sees
        # the refusals of the gate and the guard as the tool errors they are.
        telemetry.observe_server(self.mcp, tools)
        telemetry.observe_state(
            Probes(
                queued_texts=lambda: self.scheduler.queued_texts,
                queue_capacity=lambda: self.scheduler.capacity,
                open_sessions=lambda: self.sessions.open_sessions if self.sessions else 0,
                session_limit=settings.max_sessions if settings.transport == "streamable-http" else None,
                storage_conditions=lambda: [condition.kind for condition in self.backend.conditions()],
                disk_space=self.backend.disk_space,
            )
        )
        self.mcp.middleware.append(StartGate(self))
        self.mcp.middleware.append(ArgumentGuard(self.mcp))
        self.oauth: OAuth | None = None
        if settings.effective_auth_mode == "oauth":
            self.oauth = OAuth.from_settings(settings, tools, TOOL_ACCESS)
            self.mcp.middleware.append(ScopeEnforcer(self.oauth.policy))
            resource = self.oauth.resource
            log.info(
                "OAuth mode", extra={"issuer": resource.issuer, "resource": resource.url, "scopes": resource.scopes}
            )
        self._ready = anyio.Event()
        self._failure: BaseException | None = None
        self.stopping = False

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self.stopping

    async def wait_ready(self) -> None:
        with anyio.move_on_after(START_WAIT_S):
            await self._ready.wait()
        if self._failure is not None:
            raise ServiceError(f"the server could not start: {self._failure}")
        if not self._ready.is_set():
            raise ServiceError("the server is still starting (loading the embedding model); retry shortly")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the engine and load the model (in threads); serve while inside; flush and close at exit."""
        if self.legacy_local_mode:
            log.warning(
                "QDRANT_LOCAL_PATH holds qdrant-client local-mode data (brute-force search, all in memory): it is "
                "served as it is; run `qdrant-mcp-memory migrate` to move it to the embedded engine",
                extra={"qdrant": self.backend.description},
            )
        try:
            async with self.backend.running(), self.scheduler.running(), anyio.create_task_group() as tasks:
                log.info("ready", extra={"qdrant": self.backend.description, "model": self.scheduler.model_name})
                self._ready.set()
                if not self.settings.read_only:
                    tasks.start_soon(self.store.purge_periodically, self.settings.purge_interval)
                try:
                    yield
                finally:
                    self.stopping = True
                    tasks.cancel_scope.cancel()
                    if self.oauth is not None:
                        await self.oauth.issuer.aclose()
        except BaseException as exc:
            self._failure = exc
            raise

    def http_app(self) -> RequestTracker:
        """The ASGI app for the sse or streamable-http transport, outermost first:
        request tracking (graceful stop) -> bearer token, or OAuth (metadata, token, 401) -> body
        deadline and JSON-RPC envelope -> [OAuth: scopes, 403] -> session limit -> the SDK
        (Host/Origin checks, MCP endpoint, health routes)."""
        settings = self.settings
        # Explicit settings keep DNS-rebinding protection on whatever address the server binds.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=settings.effective_allowed_hosts,
            allowed_origins=settings.effective_allowed_origins,
        )
        if settings.transport == "sse":
            app: ASGIApp = self.mcp.sse_app(transport_security=security, host=settings.host)
            paths = frozenset({"/sse"})
        else:
            # Plain JSON responses for 2025-era clients: no SSE framing per call. The tools send no
            # progress or server-to-client requests, which are what an SSE response would carry.
            app = self.mcp.streamable_http_app(
                streamable_http_path=settings.path,
                transport_security=security,
                host=settings.host,
                json_response=True,
                max_sessions=settings.max_sessions,
                session_idle_timeout=None,  # SessionLimiter expires idle sessions (and evicts at the cap)
            )
            self.sessions = SessionLimiter(app, settings.path, settings.max_sessions, settings.session_idle_timeout)
            app = self.sessions
            if self.oauth is not None:
                app = ScopeGuard(app, settings.path, self.oauth.policy, self.oauth.resource)
            app = RequestGuard(app, settings.path, settings.body_timeout)
            paths = frozenset({settings.path})
        if self.oauth is not None:
            app = OAuthGate(app, self.oauth.verifier, self.oauth.resource, open_paths=HEALTH_PATHS)
        elif settings.auth_token is not None:
            app = BearerTokenAuth(app, settings.auth_token.get_secret_value(), open_paths=HEALTH_PATHS)
        self.requests = RequestTracker(app, paths, settings.max_streams_per_client)
        return self.requests
