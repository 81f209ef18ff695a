"""Liveness and readiness endpoints; both open, neither behind the Host check or auth."""

from __future__ import annotations

from mcp.server import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from .store import QdrantStore, StoreError

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


def register_health(mcp: MCPServer, store: QdrantStore) -> None:
    @mcp.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @mcp.custom_route("/readyz", methods=["GET"])
    async def readyz(_: Request) -> JSONResponse:
        if not store.started:
            return JSONResponse({"status": "starting", "reason": "embedding model or Qdrant client not ready"}, 503)
        try:
            await store.ping()
        except (StoreError, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, StoreError) else "Qdrant did not answer in time"
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        return JSONResponse(
            {"status": "ready", "model": store.embedder.model_name, "qdrant": store.describe_location()}
        )
