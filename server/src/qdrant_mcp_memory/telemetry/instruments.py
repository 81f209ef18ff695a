"""The metric instruments; names follow OpenTelemetry semantic conventions where they exist.

Attribute values a client chooses (tool, method and collection names) are bounded: names
the server does not know become `_OTHER`, as the conventions ask, so a client cannot
create unbounded time series.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from ..backends import CONDITION_KINDS, DiskSpace

OTHER = "_OTHER"
# Finer than the semconv default buckets (which start at 10 ms): a find takes a few ms.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Collection names that become attribute values, at most (the first ones seen to exist).
MAX_COLLECTION_VALUES = 100
MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "notifications/subscriptions/acknowledged",
    }
)


class BoundedValues:
    """Maps client-chosen names to metric attribute values from a bounded set."""

    def __init__(self, tools: Iterable[str] = ()) -> None:
        self.tools = frozenset(tools)
        self._collections: set[str] = set()

    def tool(self, name: object) -> str:
        return name if isinstance(name, str) and name in self.tools else OTHER

    def method(self, name: str) -> str:
        return name if name in MCP_METHODS else OTHER

    def collection(self, name: str, *, exists: bool) -> str:
        """A collection the engine knows keeps its name (up to a bound); any other is `_OTHER`."""
        if name in self._collections:
            return name
        if exists and len(self._collections) < MAX_COLLECTION_VALUES:
            self._collections.add(name)
            return name
        return OTHER


@dataclass(frozen=True)
class Probes:
    """Readings of live state, taken when metrics are collected."""

    queued_texts: Callable[[], int]
    queue_capacity: Callable[[], int]
    open_sessions: Callable[[], int] | None = None
    session_limit: int | None = None
    # The kinds of the storage conditions present now (one entry per condition).
    storage_conditions: Callable[[], Sequence[str]] | None = None
    # The embedded engine's disk (None with a Qdrant server: no series then).
    disk_space: Callable[[], DiskSpace | None] | None = None


class Instruments:
    def __init__(self, meter: metrics.Meter) -> None:
        def duration(name: str, description: str) -> metrics.Histogram:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
            )

        self.meter = meter
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
        self.embedding_rejected = meter.create_counter(
            "qdrant_mcp.embedding.rejected", unit="{call}", description="Calls refused because the queue was full"
        )
        self.points_stored = meter.create_counter(
            "qdrant_mcp.points.stored", unit="{point}", description="Points written by store tools"
        )
        self.hits_returned = meter.create_counter(
            "qdrant_mcp.hits.returned", unit="{hit}", description="Search hits returned by find"
        )
        self.memories_created = meter.create_counter(
            "qdrant_mcp.memories.created", unit="{memory}", description="Memories stored for the first time"
        )
        self.memories_updated = meter.create_counter(
            "qdrant_mcp.memories.updated",
            unit="{memory}",
            description="Memories written again: stored anew, replaced as near-duplicates, or updated",
        )
        self.memories_expired = meter.create_counter(
            "qdrant_mcp.memories.expired", unit="{memory}", description="Expired memories deleted"
        )
        meter.create_observable_gauge(
            "process.memory.usage", callbacks=[_memory_usage], unit="By", description="Resident memory of the process"
        )
        meter.create_observable_gauge(
            "qdrant_mcp.memory.limit",
            callbacks=[_memory_limit],
            unit="By",
            description="Memory limit of the process's cgroup (absent when unlimited)",
        )
        meter.create_observable_counter(
            "process.cpu.time", callbacks=[_cpu_time], unit="s", description="CPU time used by the process"
        )

    def observe(self, probes: Probes) -> None:
        def reading(read: Callable[[], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def callback(_: CallbackOptions) -> Iterable[Observation]:
                yield Observation(read())

            return callback

        self.meter.create_observable_gauge(
            "qdrant_mcp.embedding.queue.size",
            callbacks=[reading(probes.queued_texts)],
            unit="{text}",
            description="Texts waiting to be embedded",
        )
        self.meter.create_observable_gauge(
            "qdrant_mcp.embedding.queue.capacity",
            callbacks=[reading(probes.queue_capacity)],
            unit="{text}",
            description="Texts that may wait before calls are refused as busy",
        )
        if probes.open_sessions is not None and probes.session_limit is not None:
            limit = probes.session_limit
            self.meter.create_observable_gauge(
                "qdrant_mcp.sessions.open",
                callbacks=[reading(probes.open_sessions)],
                unit="{session}",
                description="Open 2025-11-25 (Streamable HTTP) sessions",
            )
            self.meter.create_observable_gauge(
                "qdrant_mcp.sessions.limit",
                callbacks=[reading(lambda: limit)],
                unit="{session}",
                description="Sessions held at most (MCP_MAX_SESSIONS)",
            )
        if probes.storage_conditions is not None:
            read_conditions = probes.storage_conditions

            def conditions(_: CallbackOptions) -> Iterable[Observation]:
                present = Counter(read_conditions())
                for kind in sorted(set(CONDITION_KINDS) | set(present)):  # known kinds read 0 when absent
                    yield Observation(present[kind], {"qdrant_mcp.storage.condition": kind})

            self.meter.create_observable_gauge(
                "qdrant_mcp.storage.conditions",
                callbacks=[conditions],
                unit="{condition}",
                description="Storage problems worked around while serving, by kind (failed index builds, "
                "collections that did not load)",
            )
        if probes.disk_space is not None:
            self._observe_disk(probes.disk_space)

    def _observe_disk(self, read: Callable[[], DiskSpace | None]) -> None:
        def space_reading(field: Callable[[DiskSpace], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def callback(_: CallbackOptions) -> Iterable[Observation]:
                space = read()
                if space is not None:  # the engine is open
                    yield Observation(field(space))

            return callback

        self.meter.create_observable_gauge(
            "qdrant_mcp.disk.free",
            callbacks=[space_reading(lambda space: space.free_bytes)],
            unit="By",
            description="Free space on the disk holding the embedded engine's data (on tmpfs, less what a restart "
            "allocates)",
        )
        self.meter.create_observable_gauge(
            "qdrant_mcp.disk.min_free",
            callbacks=[space_reading(lambda space: space.min_free_bytes)],
            unit="By",
            description="Free space below which the embedded engine refuses writes",
        )


def _memory_usage(_: CallbackOptions) -> Iterable[Observation]:
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        yield Observation(resident_pages * os.sysconf("SC_PAGE_SIZE"))
    except OSError:  # not Linux: peak RSS is the best portable figure
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        yield Observation(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def _memory_limit(_: CallbackOptions) -> Iterable[Observation]:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 reports "no limit" as a huge number
            yield Observation(int(text))
        return


def _cpu_time(_: CallbackOptions) -> Iterable[Observation]:
    times = os.times()
    yield Observation(times.user, {"cpu.mode": "user"})
    yield Observation(times.system, {"cpu.mode": "system"})
