"""Helpers shared by the observability tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from support import REPO, free_port

OTEL = REPO / "otel"
GRAFANA = REPO / "grafana"

SERVICE_NAME = "qdrant-mcp"
SCRAPE_INTERVAL_S = 1


def load_yaml(path: Path) -> dict:
    assert path.is_file(), f"missing {path.relative_to(REPO)}"
    with path.open() as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"{path.relative_to(REPO)} is not a YAML mapping"
    return data


def require_binary(name: str) -> str:
    """Path of `prometheus` or `promtool`, which must be 3.x (the stack pins Prometheus 3)."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f'`{name}` not on PATH: eval "$(scripts/prometheus)"')
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    major = re.search(r"version (\d+)\.", version.stdout + version.stderr)
    if not major or int(major.group(1)) < 3:
        pytest.fail(f'{path} is not Prometheus 3 ({version.stdout.strip()!r}): eval "$(scripts/prometheus)"')
    return path


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310  # a loopback http URL the test built
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})\n{tail}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ----------------------------------------------------------------------------- Prometheus


@dataclasses.dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> dict:
        """Instant query. Returns the JSON body; parse errors come back as status=error."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/query", data=data)  # noqa: S310  # loopback Prometheus
        try:
            with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310  # the test's own Prometheus on loopback
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def series(self, expr: str) -> list[dict]:
        body = self.query(expr)
        assert body.get("status") == "success", f"{expr}\n -> {body.get('errorType')}: {body.get('error')}"
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result


def finite_values(series: list[dict]) -> list[float]:
    out = []
    for s in series:
        v = float(s["value"][1])
        if not math.isnan(v) and not math.isinf(v):
            out.append(v)
    return out


def start_prometheus(
    tmp: Path, scrape_targets: dict[str, str], honor_labels: bool = False
) -> tuple[subprocess.Popen, Prometheus, Path]:
    """A real Prometheus scraping `scrape_targets` (job -> host:port) every second; with
    honor_labels the targets' own job and instance labels are kept."""
    binary = require_binary("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "15s"},
        "scrape_configs": [
            {"job_name": job, "honor_labels": honor_labels, "static_configs": [{"targets": [target]}]}
            for job, target in scrape_targets.items()
        ],
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    (tmp / "tsdb").mkdir()
    log = tmp / "prometheus.log"
    with log.open("wb") as log_file:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}")
    wait_until(lambda: http_get(f"{prom.url}/-/ready")[0] == 200, 30, "Prometheus /-/ready", proc, log)
    return proc, prom, log


def compose_default(value: str) -> str:
    """Compose interpolation with an empty environment: ${X:-d} / ${X-d} -> d, ${X} -> ''."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


# ----------------------------------------------------------------------------- OTLP into Prometheus
#
# Debian's Prometheus builds have no OTLP receiver, so the tests store what the pinned v3.14.0's
# receiver would store and let a real Prometheus scrape it (honor_labels keeps job and instance).
# The rules, from storage/remote/otlptranslator/prometheusremotewrite at v3.14.0:
# metrics_to_prw.go setResourceContext (job = service.namespace + "/" + service.name, or the name
# alone; instance = service.instance.id; promote_resource_attributes as sanitised labels) and
# helper.go createAttributes (data point attributes first, a promoted attribute only where no
# data point attribute set that label, then job and instance over everything). Names follow
# otlp_translated_name; with cumulative temporality the latest point of a series is its value.


def _otlp_value(value) -> str:
    kind = value.WhichOneof("value")
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    return str(getattr(value, kind)) if kind else ""


def _go_float(bound: float) -> str:
    text = repr(float(bound))
    return text[:-2] if text.endswith(".0") else text


def prometheus_samples_from_otlp(requests: list, otlp_config: dict) -> dict[tuple[str, frozenset], float]:
    """(series name, labels) -> value, as Prometheus v3.14.0 stores these OTLP export requests."""
    promote = set(otlp_config.get("promote_resource_attributes") or [])
    out: dict[tuple[str, frozenset], float] = {}
    for request in requests:
        for rm in request.resource_metrics:
            resource = {a.key: _otlp_value(a.value) for a in rm.resource.attributes}
            promoted = {otlp_translated_label(k): v for k, v in resource.items() if k in promote}
            identity = {}
            if "service.name" in resource:
                namespace = resource.get("service.namespace")
                identity["job"] = f"{namespace}/{resource['service.name']}" if namespace else resource["service.name"]
            if "service.instance.id" in resource:
                identity["instance"] = resource["service.instance.id"]
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind == "histogram":
                        points, prom_kind = m.histogram.data_points, "histogram"
                    elif kind == "sum":
                        points, prom_kind = m.sum.data_points, "counter" if m.sum.is_monotonic else "gauge"
                    elif kind == "gauge":
                        points, prom_kind = m.gauge.data_points, "gauge"
                    else:
                        continue  # exponential histograms and summaries: the server sends none
                    name = otlp_translated_name(m.name, m.unit, prom_kind)
                    for point in points:
                        labels = {otlp_translated_label(a.key): _otlp_value(a.value) for a in point.attributes}
                        labels = {**{k: v for k, v in promoted.items() if not labels.get(k)}, **labels, **identity}
                        if prom_kind != "histogram":
                            value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                            out[(name, frozenset(labels.items()))] = float(value)
                            continue
                        cumulative = 0
                        bounds = [*map(_go_float, point.explicit_bounds), "+Inf"]
                        for le, count in zip(bounds, point.bucket_counts, strict=True):
                            cumulative += count
                            out[(name + "_bucket", frozenset({**labels, "le": le}.items()))] = float(cumulative)
                        out[(name + "_sum", frozenset(labels.items()))] = point.sum
                        out[(name + "_count", frozenset(labels.items()))] = float(point.count)
    return out


def exposition(samples: dict[tuple[str, frozenset], float]) -> str:
    """Prometheus text format of (name, labels) -> value."""

    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    lines = []
    for (name, labels), value in sorted(samples.items(), key=lambda item: (item[0][0], sorted(item[0][1]))):
        matchers = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels))
        lines.append(f"{name}{{{matchers}}} {value!r}")
    return "\n".join(lines) + "\n"


class ExpositionServer(ThreadingHTTPServer):
    """Serves a fixed exposition text at /metrics on loopback."""

    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


# ----------------------------------------------------------------------------- Grafana's trace links


def grafana_provisioned(value: str) -> str:
    """A provisioning file's string as Grafana reads it: `$$` is its escape for `$`."""
    assert not re.search(r"\$\{?[A-Za-z_]", value.replace("$$", "")), f"Grafana would interpolate {value!r}"
    return value.replace("$$", "$")


def traces_to_metrics_queries(options: dict, resource: dict[str, str], span: dict[str, str]) -> list[tuple[str, str]]:
    """(link name, PromQL) of every trace-to-metrics link Grafana offers on a span, as
    public/app/features/explore/TraceView/createSpanLink.tsx buildMetricsQuery makes it: each
    configured tag the span has (resource attributes first, then span attributes) becomes
    `value="<attribute value>"` (`key` when no value is given), joined by ", ", in place of
    every $__tags; without tags the query is left as it is."""
    tags = options.get("tags") or []
    span_tags = [*resource.items(), *span.items()]
    out = []
    for query in options["queries"]:
        expr = grafana_provisioned(query["query"])
        if tags and "$__tags" in expr:
            labels = []
            for tag in tags:
                value = next((v for k, v in span_tags if k == tag["key"]), None)
                if value:
                    labels.append(f'{tag.get("value") or tag["key"]}="{value}"')
            expr = expr.replace("$__tags", ", ".join(labels))
        out.append((query["name"], expr))
    return out


# ----------------------------------------------------------------------------- traffic

STORE_TEXTS = [
    "The observability stack sends traces to Tempo.",
    "Qdrant stores vectors in collections.",
]
# The live server deletes expired memories every second (QDRANT_PURGE_INTERVAL), so each wave's
# short-lived memory is gone a second or two later: the expired counter moves.
SHORT_TTL = "1s"


async def traffic(url: str, wave: int) -> None:
    from mcp.client import Client

    async with Client(url) as client:
        for text in STORE_TEXTS:
            result = await client.call_tool(
                "qdrant-store", {"information": f"{text} (wave {wave})", "collection_name": "obs-test"}
            )
            assert not result.is_error, f"qdrant-store failed: {result}"
        # The lifecycle counters: the same text again is an update, a short ttl expires.
        again = {"information": f"{STORE_TEXTS[0]} (wave {wave})", "metadata": {"again": True}}
        brief = {"information": f"This note lasts a second (wave {wave}).", "ttl": SHORT_TTL}
        for arguments in (again, brief):
            result = await client.call_tool("qdrant-store", {**arguments, "collection_name": "obs-test"})
            assert not result.is_error, f"qdrant-store failed: {result}"
        result = await client.call_tool("qdrant-find", {"query": "where do traces go?", "collection_name": "obs-test"})
        assert not result.is_error, f"qdrant-find failed: {result}"
        # One failing call per wave: limit must be >= 1. The MCP SDK reports a tool error as
        # a result with is_error=True (or raises, depending on the validation layer).
        try:
            bad = await client.call_tool(
                "qdrant-find", {"query": "anything", "collection_name": "obs-test", "limit": 0}
            )
        except Exception:
            bad = None
        assert bad is None or bad.is_error, f"qdrant-find with limit=0 unexpectedly succeeded: {bad}"


# ----------------------------------------------------------------------------- metric contract

# The server's instruments as agreed with the lead: (OTel name, unit, kind, attributes).
# kind: histogram | counter | updowncounter | gauge
SERVER_INSTRUMENTS = [
    ("mcp.server.operation.duration", "s", "histogram", ("mcp.method.name", "gen_ai.tool.name", "error.type")),
    ("qdrant_mcp.embedding.duration", "s", "histogram", ("gen_ai.request.model",)),
    ("qdrant_mcp.embedding.batch_size", "{text}", "histogram", ("gen_ai.request.model",)),
    (
        "db.client.operation.duration",
        "s",
        "histogram",
        ("db.system.name", "db.operation.name", "db.collection.name", "error.type"),
    ),
    ("qdrant_mcp.points.stored", "{point}", "counter", ("db.collection.name",)),
    ("qdrant_mcp.hits.returned", "{hit}", "counter", ("db.collection.name",)),
    ("qdrant_mcp.memories.created", "{memory}", "counter", ("db.collection.name",)),
    ("qdrant_mcp.memories.updated", "{memory}", "counter", ("db.collection.name",)),
    ("qdrant_mcp.memories.expired", "{memory}", "counter", ("db.collection.name",)),
    ("process.memory.usage", "By", "gauge", ()),
    ("process.cpu.time", "s", "counter", ("cpu.mode",)),
    ("qdrant_mcp.embedding.queue.size", "{text}", "gauge", ()),  # texts waiting to be embedded
    ("qdrant_mcp.embedding.queue.capacity", "{text}", "gauge", ()),  # above it calls are refused as busy
    ("qdrant_mcp.sessions.open", "{session}", "gauge", ()),  # 2025-11-25 Streamable HTTP sessions
    ("qdrant_mcp.sessions.limit", "{session}", "gauge", ()),
    # storage problems worked around while serving (backends.CONDITION_KINDS), each kind 0 when absent
    ("qdrant_mcp.storage.conditions", "{condition}", "gauge", ("qdrant_mcp.storage.condition",)),
]

# prometheus/otlptranslator (used by Prometheus 3's OTLP receiver), strategy
# UnderscoreEscapingWithSuffixes: metric_namer.go normalizeName + unit_namer.go.
_UNIT = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNIT = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def otlp_translated_name(name: str, unit: str, kind: str) -> str:
    import re

    tokens = [t for t in re.split(r"[^a-zA-Z0-9:]+", name) if t]
    main, _, per = unit.partition("/")
    main = main.strip()
    main_suffix = _UNIT.get(main, main) if main and not set(main) & set("{}") else ""
    per_suffix = ""
    if per.strip() and not set(per) & set("{}"):
        per_suffix = "per_" + _PER_UNIT.get(per.strip(), per.strip())

    def clean(u: str) -> str:
        return re.sub(r"__+", "_", re.sub(r"[^a-zA-Z0-9:]", "_", u)).lstrip("_")

    main_suffix, per_suffix = clean(main_suffix), clean(per_suffix)
    if main_suffix in tokens:
        main_suffix = ""
    if per_suffix == "per_":
        per_suffix = ""
    else:
        per_suffix = per_suffix.rstrip("_")
        if per_suffix in tokens:
            per_suffix = ""
    if per_suffix:
        main_suffix = main_suffix.rstrip("_")
    tokens += [s for s in (main_suffix, per_suffix) if s]
    if kind == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    return "_" + out if out[:1].isdigit() else out


def otlp_translated_label(key: str) -> str:
    import re

    out = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return "key_" + out if out[:1].isdigit() else out


def expected_series_names() -> dict[str, set[str]]:
    """Prometheus series name -> expected label names, for the whole contract."""
    out: dict[str, set[str]] = {}
    for name, unit, kind, attrs in SERVER_INSTRUMENTS:
        base = otlp_translated_name(name, unit, kind)
        labels = {otlp_translated_label(a) for a in attrs}
        if kind == "histogram":
            out[base + "_bucket"] = labels | {"le"}
            out[base + "_sum"] = labels
            out[base + "_count"] = labels
        else:
            out[base] = labels
    return out


# Server instruments that exist only when something happened or exists (same tuple shape as
# SERVER_INSTRUMENTS): a counter's first refusal, a cgroup memory limit, the embedded engine's
# disk. The dashboard's Health row and the alert rules use them; test_dashboards.py requires data
# from a panel query as soon as the live server exports every metric it uses.
CONDITIONAL_SERVER_INSTRUMENTS = [
    ("qdrant_mcp.embedding.rejected", "{call}", "counter", ()),  # calls refused because the queue was full
    ("qdrant_mcp.memory.limit", "By", "gauge", ()),  # cgroup memory limit; absent when unlimited
    ("qdrant_mcp.disk.free", "By", "gauge", ()),  # the embedded engine's disk; absent with a Qdrant server
    ("qdrant_mcp.disk.min_free", "By", "gauge", ()),  # writes are refused below it
]


def conditional_series_names() -> set[str]:
    return {otlp_translated_name(name, unit, kind) for name, unit, kind, _ in CONDITIONAL_SERVER_INSTRUMENTS}


# The collector's own metrics, scraped from its :8888 by the prometheus/collector receiver
# (job "otel-collector") and pushed to Prometheus over OTLP like everything else. Names from
# collector core v0.159 (receiver/receiverhelper, exporter/exporterhelper,
# processor/processorhelper documentation.md); the image is 0.161.0, not run here. The
# collector exposes them on :8888 without unit and type suffixes (its defaults
# without_units/without_type_suffix), the receiver keeps them as monotonic sums and gauges,
# and Prometheus' OTLP translation appends `_total` to the sums; `{span}`-style units add
# nothing. Labels: receiver + transport, exporter, exporter + data_type (queue gauges).
_COLLECTOR_ITEMS = ("spans", "metric_points", "log_records")
COLLECTOR_INSTRUMENTS = [
    *[
        (f"otelcol_receiver_{what}_{items}", "", "counter")
        for what in ("accepted", "refused", "failed")
        for items in _COLLECTOR_ITEMS
    ],
    *[
        (f"otelcol_exporter_{what}_{items}", "", "counter")
        for what in ("sent", "send_failed", "enqueue_failed")
        for items in _COLLECTOR_ITEMS
    ],
    ("otelcol_exporter_queue_size", "", "gauge"),
    ("otelcol_exporter_queue_capacity", "", "gauge"),
    ("otelcol_processor_incoming_items", "", "counter"),
    ("otelcol_processor_outgoing_items", "", "counter"),
]


def collector_series_names() -> set[str]:
    return {otlp_translated_name(name, unit, kind) for name, unit, kind in COLLECTOR_INSTRUMENTS}


# Series the collector's prometheus receivers add per scrape target (job "qdrant",
# "otel-collector"), and Prometheus' own series of alert states.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling"}
ALERT_SERIES = {"ALERTS", "ALERTS_FOR_STATE"}

# Qdrant's documented /metrics names (qdrant.tech "Monitoring & Telemetry", v1.16+ tables, and
# src/common/metrics.rs). Histograms also give _bucket/_sum/_count.
QDRANT_METRICS = {
    "app_info",
    "app_status_recovery_mode",
    "collections_total",
    "collections_vector_total",
    "collections_full_total",
    "collections_aggregated_total",
    "collection_points",
    "collection_vectors",
    "collection_indexed_only_excluded_points",
    "collection_active_replicas_min",
    "collection_active_replicas_max",
    "collection_dead_replicas",
    "collection_running_optimizations",
    "collection_update_queue_length",
    "collection_hardware_metric_cpu",
    "collection_hardware_metric_io_read",
    "collection_hardware_metric_io_write",
    "rest_responses_total",
    "rest_responses_avg_duration_seconds",
    "rest_responses_min_duration_seconds",
    "rest_responses_max_duration_seconds",
    "grpc_responses_total",
    "grpc_responses_avg_duration_seconds",
    "grpc_responses_min_duration_seconds",
    "grpc_responses_max_duration_seconds",
    "memory_active_bytes",
    "memory_allocated_bytes",
    "memory_metadata_bytes",
    "memory_resident_bytes",
    "memory_retained_bytes",
    "process_threads",
    "process_open_fds",
    "process_max_fds",
    "process_open_mmaps",
    "process_total_mmaps",
    "process_minor_page_faults",
    "process_major_page_faults",
    "snapshot_creation_running",
    "snapshot_recovery_running",
    "snapshot_created_total",
    "cluster_enabled",
    "cluster_peers_total",
    "cluster_term",
    "cluster_commit",
    "cluster_pending_operations_total",
    "cluster_voter",
} | {
    f"{h}_{s}"
    for h in ("rest_responses_duration_seconds", "grpc_responses_duration_seconds")
    for s in ("bucket", "sum", "count")
}


# ----------------------------------------------------------------------------- Qdrant's traffic


@dataclasses.dataclass(frozen=True)
class QdrantCall:
    api: str  # "rest" or "grpc"
    endpoint: str  # as Qdrant labels it: REST "METHOD /route/{pattern}", gRPC "/package.Service/Method"
    status: int  # HTTP status, or gRPC status code


# The calls tests/stack/test_upstream_stack.py makes the real Qdrant v1.19.0 serve (its traffic
# fixture checks each status it gets against this). Qdrant's /metrics report responses per
# (endpoint, status) it has served, for whitelisted endpoints only, with timings for REST only at
# status 200 (src/common/metrics.rs: REST_ENDPOINT_WHITELIST, GRPC_ENDPOINT_WHITELIST,
# REST_TIMINGS_FOR_STATUS, WebApiTelemetry/GrpcTelemetry::add_metrics). The telemetry middleware
# wraps the API-key check (src/actix/mod.rs, src/tonic/mod.rs), so refused calls are counted.
UPSTREAM_QDRANT_CALLS = {
    "qdrant-store": QdrantCall("rest", "PUT /collections/{collection_name}/points", 200),  # the server's upsert
    "qdrant-find": QdrantCall("rest", "POST /collections/{collection_name}/points/query", 200),
    "gRPC count": QdrantCall("grpc", "/qdrant.Points/Count", 0),
    # Deliberate failures, for the dashboard's failure panels:
    "REST count without a key": QdrantCall("rest", "POST /collections/{collection_name}/points/count", 401),
    "gRPC count without a key": QdrantCall("grpc", "/qdrant.Points/Count", 16),  # UNAUTHENTICATED
}

# From src/common/metrics.rs at v1.19.0: the endpoints whose responses /metrics reports.
QDRANT_REST_WHITELIST = {
    f"/collections/{{collection_name}}/{path}"
    for path in (
        "index",
        "points",
        "points/batch",
        "points/count",
        "points/delete",
        "points/discover",
        "points/discover/batch",
        "points/facet",
        "points/payload",
        "points/payload/clear",
        "points/payload/delete",
        "points/query",
        "points/query/batch",
        "points/query/groups",
        "points/recommend",
        "points/recommend/batch",
        "points/recommend/groups",
        "points/scroll",
        "points/search",
        "points/search/batch",
        "points/search/groups",
        "points/search/matrix/offsets",
        "points/search/matrix/pairs",
        "points/vectors",
        "points/vectors/delete",
        "vectors/{vector_name}",
    )
}
QDRANT_GRPC_WHITELIST = {
    f"/qdrant.Points/{method}"
    for method in (
        "ClearPayload",
        "Count",
        "CreateVectorName",
        "Delete",
        "DeletePayload",
        "DeleteVectorName",
        "Discover",
        "DiscoverBatch",
        "Facet",
        "Get",
        "OverwritePayload",
        "Query",
        "QueryBatch",
        "QueryGroups",
        "Recommend",
        "RecommendBatch",
        "RecommendGroups",
        "Scroll",
        "Search",
        "SearchBatch",
        "SearchGroups",
        "SetPayload",
        "UpdateBatch",
        "UpdateVectors",
        "Upsert",
    )
}

# Qdrant series that do not depend on the calls: always there (app, memory, process), or once
# the job's collection exists (qdrant-store creates it).
QDRANT_STATE_METRICS = {
    "app_info",
    "collections_total",
    "collections_vector_total",
    "collection_points",
    "collection_vectors",
    "collection_running_optimizations",
    "collection_update_queue_length",
    "memory_active_bytes",
    "memory_allocated_bytes",
    "memory_resident_bytes",
    "memory_retained_bytes",
    "process_threads",
    "process_open_fds",
    "process_open_mmaps",
}


def qdrant_response_samples(calls) -> dict[tuple[str, frozenset], float]:
    """The rest_responses_* / grpc_responses_* series Qdrant v1.19.0 reports after `calls`
    (OperationDurationMetricsBuilder: a total per endpoint and status; avg/min/max and the
    duration histogram only with timings), the durations 1 ms."""
    out: dict[tuple[str, frozenset], float] = {}
    for call in calls:
        if call.api == "rest":
            method, route = call.endpoint.split(" ", 1)
            if route not in QDRANT_REST_WHITELIST:
                continue
            labels, timings = {"method": method, "endpoint": route, "status": str(call.status)}, call.status == 200
        else:
            if call.endpoint not in QDRANT_GRPC_WHITELIST:
                continue
            labels, timings = {"endpoint": call.endpoint, "status": str(call.status)}, True
        prefix, key = f"{call.api}_responses", frozenset(labels.items())
        out[(f"{prefix}_total", key)] = out.get((f"{prefix}_total", key), 0.0) + 1
        if timings:
            for stat in ("avg", "min", "max"):
                out[(f"{prefix}_{stat}_duration_seconds", key)] = 0.001
            for le in ("0.001", "+Inf"):
                bucket = (f"{prefix}_duration_seconds_bucket", frozenset({**labels, "le": le}.items()))
                out[bucket] = out.get(bucket, 0.0) + 1
            out[(f"{prefix}_duration_seconds_count", key)] = out[(f"{prefix}_total", key)]
            out[(f"{prefix}_duration_seconds_sum", key)] = out[(f"{prefix}_total", key)] * 0.001
    return out


# ----------------------------------------------------------------------------- dashboards

DASHBOARD_DIR = GRAFANA / "dashboards"
PROVISIONED_UIDS = {"prometheus", "tempo", "loki"}

# What Grafana substitutes at query time; the values suit the live fixture (a few seconds of
# 1 s scrapes, all within the last minute).
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "5s",
    "__range": "5m",
    "__range_s": "300",
    "__interval_ms": "5000",
    "__range_ms": "300000",
}


def load_dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their children here
    return out


def row_title(dashboard: dict, panel: dict) -> str:
    """Title of the row a panel sits under ("" above the first row). Expanded rows are flat in
    `panels` (membership = the last row at or above the panel's y), collapsed rows keep
    their children in the row's own `panels`."""
    top = dashboard.get("panels", [])
    for p in top:
        if p.get("type") == "row" and any(c is panel for c in p.get("panels", [])):
            return p.get("title", "")
    rows = sorted((p for p in top if p.get("type") == "row"), key=lambda p: p["gridPos"]["y"])
    title = ""
    for r in rows:
        if r["gridPos"]["y"] <= panel["gridPos"]["y"]:
            title = r.get("title", "")
    return title


def variable_values(dashboard: dict) -> dict[str, str]:
    """Template variable -> the value Grafana uses by default (All -> allValue)."""
    out = {}
    for v in dashboard.get("templating", {}).get("list", []):
        cur = v.get("current", {}).get("value")
        cur = cur[0] if isinstance(cur, list) and len(cur) == 1 else cur
        if cur in ("$__all", None, [], "") and v.get("includeAll"):
            out[v["name"]] = v.get("allValue") or ".*"
        else:
            out[v["name"]] = cur if isinstance(cur, str) else "|".join(cur)
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    import re

    values = {**GRAFANA_BUILTINS, **variables}

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def prometheus_targets(dashboard: dict) -> list[tuple[str, str, dict]]:
    """(panel title, substituted expr, target) for every Prometheus query in the dashboard."""
    variables = variable_values(dashboard)
    out = []
    for panel in all_panels(dashboard):
        for t in panel.get("targets", []):
            ds = t.get("datasource") or panel.get("datasource") or {}
            if ds.get("uid") == "prometheus" and t.get("expr"):
                out.append((panel.get("title", ""), substitute(t["expr"], variables), t))
    return out


_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "le",
    "atan2",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (good enough for our dashboards)."""
    import re

    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"\boffset\s+-?[0-9a-z]+", "", e)  # offset modifiers (`offset 5m`)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word, rest = m.group(0), e[m.end() :].lstrip()
        if rest.startswith("(") or word in _PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+(e\d+)?", word):
            continue
        names.add(word)
    return names
