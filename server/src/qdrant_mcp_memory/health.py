"""Liveness and readiness; both open (no token, no Host check), so orchestrators can probe them.

Readiness details (the model, where the data lives, why Qdrant or the embedding service is
unreachable) go only to requests whose Host is allowed: a stranger probing the port learns
"ready" or not, not the store's path or the Qdrant URL. An embedding service that cannot be
reached leaves the server ready (listing, collection info and deletes still work) with an
`embeddings-unavailable` condition; an unreachable Qdrant makes it unavailable (503).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from .backends import DiskSpace
from .errors import ServiceError

if TYPE_CHECKING:
    from .app import Application

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
PING_TIMEOUT_S = 2.0


def host_allowed(host: str | None, allowed: list[str]) -> bool:
    """The SDK's Host rule: an exact `host:port`, or `host:*` for any port."""
    if not host:
        return False
    return host in allowed or any(p.endswith(":*") and host.startswith(p[:-1]) for p in allowed)


def register_health(mcp: MCPServer, application: Application) -> None:
    allowed = application.settings.effective_allowed_hosts

    # The SDK's custom_route carries no annotations; the handlers below are fully typed.
    @mcp.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @mcp.custom_route("/readyz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def readyz(request: Request) -> JSONResponse:
        detailed = host_allowed(request.headers.get("host"), allowed)

        def answer(status: str, code: int, **details: Any) -> JSONResponse:
            return JSONResponse({"status": status, **(details if detailed else {})}, code)

        if application.stopping:
            return answer("stopping", 503, reason="the server is shutting down")
        if not application.ready:
            return answer("starting", 503, reason="loading the embedding model and opening Qdrant")
        try:
            with anyio.fail_after(PING_TIMEOUT_S):
                await application.backend.ping()
        except ServiceError as exc:
            return answer("unavailable", 503, reason=str(exc))
        except TimeoutError:
            return answer("unavailable", 503, reason="Qdrant did not answer in time")
        conditions = [asdict(c) for c in application.backend.conditions()]
        if application.scheduler.problem is not None:
            # Still ready: what does not need embeddings (list, info, delete) is served.
            conditions.append({"kind": "embeddings-unavailable", "detail": application.scheduler.problem})
        space = application.backend.disk_space()
        return answer(
            "ready",
            200,
            calls_in_flight=application.requests.in_flight if application.requests else 0,
            sessions_open=application.sessions.open_sessions if application.sessions else 0,
            tasks=len(anyio.get_running_tasks()),
            model=application.scheduler.model_name,
            embeddings=application.scheduler.model.description,
            qdrant=application.backend.description,
            search="hybrid" if application.settings.hybrid_search else "dense",
            **({"storage": "qdrant-client local mode: migrate it"} if application.legacy_local_mode else {}),
            **({"disk": disk_details(space)} if space is not None else {}),
            # Still ready (the rest is served), but something needs attention.
            **({"conditions": conditions} if conditions else {}),
        )


def disk_details(space: DiskSpace) -> dict[str, Any]:
    """The embedded engine's disk: writes are refused below min_free_bytes (the condition says why)."""
    return {
        "path": str(space.path),
        "free_bytes": space.free_bytes,
        "min_free_bytes": space.min_free_bytes,
        "writes": "accepted" if space.writable else "refused",
    }
