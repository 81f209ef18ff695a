"""Telemetry wrapped around the server's layers from outside.

The tool code carries no tracing: this module wraps the MCP message pipeline (a
middleware inside the SDK's own span), the embedder's public calls and the store's single
Qdrant choke point (`QdrantStore.call`), adding child spans and the metrics below.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, StatusCode

from ..embeddings import FastEmbedEmbedder
from ..store import QdrantStore

log = logging.getLogger("qdrant_mcp_memory.calls")
SCOPE = "qdrant_mcp"
# Finer than the semconv default buckets (which start at 10 ms): a find takes a few ms.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Instruments:
    """The metric instruments; names follow OTel semantic conventions where they exist."""

    def __init__(self, meter: metrics.Meter) -> None:
        def duration(name: str, description: str) -> metrics.Histogram:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
            )

        self.operation_duration = duration(
            "mcp.server.operation.duration", "Duration of MCP requests handled by the server"
        )
        self.embedding_duration = duration(
            "qdrant_mcp.embedding.duration", "Duration of one embedding call (incl. queueing)"
        )
        self.db_duration = duration("db.client.operation.duration", "Duration of Qdrant operations")
        self.embedding_batch_size = meter.create_histogram(
            "qdrant_mcp.embedding.batch_size",
            unit="{text}",
            description="Texts per ONNX run (concurrent calls coalesce)",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
        )
        self.points_stored = meter.create_counter(
            "qdrant_mcp.points.stored", unit="{point}", description="Points written by store tools"
        )
        self.hits_returned = meter.create_counter(
            "qdrant_mcp.hits.returned", unit="{hit}", description="Search hits returned by find"
        )
        meter.create_observable_gauge(
            "process.memory.usage", callbacks=[_memory_usage], unit="By", description="Resident memory of the process"
        )
        meter.create_observable_counter(
            "process.cpu.time", callbacks=[_cpu_time], unit="s", description="CPU time used by the process"
        )


def _memory_usage(_: CallbackOptions) -> Iterable[Observation]:
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        yield Observation(resident_pages * os.sysconf("SC_PAGE_SIZE"))
    except OSError:  # not Linux: peak RSS is the best portable figure
        import resource

        yield Observation(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _cpu_time(_: CallbackOptions) -> Iterable[Observation]:
    times = os.times()
    yield Observation(times.user, {"cpu.mode": "user"})
    yield Observation(times.system, {"cpu.mode": "system"})


def message_middleware(instruments: Instruments) -> Callable[..., Awaitable[Any]]:
    """Adds network/session/client attributes to the SDK's SERVER span; records duration; logs each call."""

    async def middleware(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        span = trace.get_current_span()
        request = ctx.request
        transport = "tcp" if request is not None else "pipe"
        attributes: dict[str, Any] = {"network.transport": transport}
        if request is not None:
            attributes["network.protocol.name"] = "http"
            attributes["network.protocol.version"] = request.scope.get("http_version", "1.1")
            if request.client is not None:
                attributes["client.address"] = request.client.host
                attributes["client.port"] = request.client.port
            session_id = request.headers.get("mcp-session-id")
            if session_id:
                attributes["mcp.session.id"] = session_id
        span.set_attributes(attributes)
        tool = ctx.params.get("name") if ctx.method == "tools/call" and ctx.params else None
        metric_attributes: dict[str, Any] = {"mcp.method.name": ctx.method}
        if isinstance(tool, str):
            metric_attributes["gen_ai.tool.name"] = tool
        start = time.perf_counter()
        error_type: str | None = None
        try:
            result = await call_next(ctx)
        except Exception as exc:
            error_type = getattr(getattr(exc, "error", None), "code", None)
            error_type = str(error_type) if error_type is not None else type(exc).__qualname__
            raise
        else:
            if _is_tool_error(result):
                error_type = "tool_error"
            return result
        finally:
            elapsed = time.perf_counter() - start
            if error_type:
                metric_attributes["error.type"] = error_type
            instruments.operation_duration.record(elapsed, metric_attributes)
            if tool is not None:
                log.info(
                    "tool call",
                    extra={
                        "tool": tool,
                        "duration_ms": round(elapsed * 1000, 2),
                        "outcome": error_type or "ok",
                        "transport": transport,
                    },
                )

    return middleware


def _is_tool_error(result: Any) -> bool:
    # Results reach middleware as the model or, on some paths, as its wire-form dict.
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True


def instrument_embedder(embedder: FastEmbedEmbedder, tracer: trace.Tracer, instruments: Instruments) -> None:
    model = {"gen_ai.request.model": embedder.model_name}

    def traced(
        method: Callable[..., Awaitable[Any]], kind: str, count: Callable[[Any], int]
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapper(texts: Any) -> Any:
            attributes = {
                **model,
                "gen_ai.operation.name": "embeddings",
                "qdrant_mcp.embedding.kind": kind,
                "qdrant_mcp.embedding.texts": count(texts),
            }
            with tracer.start_as_current_span(
                f"embeddings {embedder.model_name}", kind=SpanKind.INTERNAL, attributes=attributes
            ):
                start = time.perf_counter()
                try:
                    return await method(texts)
                finally:
                    instruments.embedding_duration.record(time.perf_counter() - start, model)

        return wrapper

    run_batch = embedder.run_batch

    def measured_run(kind: Any, texts: list[str]) -> Any:
        instruments.embedding_batch_size.record(len(texts), model)
        return run_batch(kind, texts)

    embedder.embed_query = traced(embedder.embed_query, "query", lambda _: 1)  # type: ignore[method-assign]
    embedder.embed_documents = traced(embedder.embed_documents, "document", len)  # type: ignore[method-assign]
    embedder.run_batch = measured_run  # type: ignore[method-assign]


def instrument_store(store: QdrantStore, tracer: trace.Tracer, instruments: Instruments) -> None:
    base: dict[str, Any] = {"db.system.name": "qdrant"}
    if store.settings.qdrant_url and store.settings.qdrant_url != ":memory:":
        url = urlsplit(store.settings.qdrant_url)
        base["server.address"] = url.hostname or ""
        base["server.port"] = url.port or (443 if url.scheme == "https" else 6333)
    call = store.call

    async def traced_call(operation: str, collection: str | None, awaitable: Any) -> Any:
        attributes = {**base, "db.operation.name": operation}
        if collection:
            attributes["db.collection.name"] = collection
        name = f"{operation} {collection}" if collection else operation
        with tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            start = time.perf_counter()
            try:
                result = await call(operation, collection, awaitable)
            except Exception as exc:
                attributes["error.type"] = type(exc).__name__
                span.set_attribute("error.type", type(exc).__name__)
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
                raise
            finally:
                instruments.db_duration.record(time.perf_counter() - start, attributes)
            rows = _returned_rows(result)
            if rows is not None:
                span.set_attribute("db.response.returned_rows", rows)
            return result

    store_entries, find = store.store, store.find

    async def counted_store(collection: str, entries: Any) -> Any:
        ids = await store_entries(collection, entries)
        instruments.points_stored.add(len(ids), {"db.collection.name": collection})
        return ids

    async def counted_find(collection: str, *args: Any, **kwargs: Any) -> Any:
        hits = await find(collection, *args, **kwargs)
        instruments.hits_returned.add(len(hits or []), {"db.collection.name": collection})
        return hits

    store.call = traced_call  # type: ignore[method-assign]
    store.store = counted_store  # type: ignore[method-assign]
    store.find = counted_find  # type: ignore[method-assign]


def _returned_rows(result: Any) -> int | None:
    if hasattr(result, "points"):
        return len(result.points)
    if hasattr(result, "collections"):
        return len(result.collections)
    if isinstance(result, list):
        return len(result)
    count = getattr(result, "count", None)
    return count if isinstance(count, int) else None
