"""The app factory: settings -> embeddings -> store -> tools -> MCP server -> HTTP app."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from . import __version__
from .auth import BearerTokenAuth
from .embeddings import FastEmbedEmbedder
from .health import HEALTH_PATHS, register_health
from .resources import register_resources
from .settings import Settings
from .store import QdrantStore
from .tools import register_tools

INSTRUCTIONS = (
    "Semantic memory backed by Qdrant. Store facts with qdrant-store (or many at once with "
    "qdrant-store-many) and retrieve them by meaning with qdrant-find."
)


def create_store(settings: Settings) -> QdrantStore:
    return QdrantStore(settings, FastEmbedEmbedder(settings.embedding_model, settings.embedding_threads))


def create_server(settings: Settings, store: QdrantStore) -> MCPServer:
    mcp = MCPServer("qdrant-mcp", version=__version__, instructions=INSTRUCTIONS, log_level=settings.log_level)
    register_tools(mcp, settings, store)
    register_resources(mcp, store)
    register_health(mcp, store)
    return mcp


def create_http_app(settings: Settings, mcp: MCPServer) -> ASGIApp:
    """The ASGI app for the sse or streamable-http transport, with Host/Origin checks and optional auth."""
    # Explicit settings keep DNS-rebinding protection on whatever address the server binds.
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.effective_allowed_hosts,
        allowed_origins=settings.effective_allowed_origins,
    )
    if settings.transport == "sse":
        app: ASGIApp = mcp.sse_app(transport_security=security, host=settings.host)
    else:
        # Plain JSON responses for 2025-era clients: no SSE framing per call. The tools send no
        # progress or server-to-client requests, which are what an SSE response would carry.
        app = mcp.streamable_http_app(
            streamable_http_path=settings.path, transport_security=security, host=settings.host, json_response=True
        )
    if settings.auth_token is not None:
        app = BearerTokenAuth(app, settings.auth_token.get_secret_value(), open_paths=HEALTH_PATHS)
    return app
