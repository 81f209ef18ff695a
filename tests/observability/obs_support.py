"""Helpers shared by the observability tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
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
    path = shutil.which(name)
    if not path:
        pytest.fail(f"`{name}` not on PATH: run scripts/prometheus (installs Debian's prometheus package)")
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


def start_prometheus(tmp: Path, scrape_targets: dict[str, str]) -> tuple[subprocess.Popen, Prometheus, Path]:
    binary = require_binary("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "15s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in scrape_targets.items()
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


# ----------------------------------------------------------------------------- traffic

STORE_TEXTS = [
    "The observability stack sends traces to Tempo.",
    "Qdrant stores vectors in collections.",
]


async def traffic(url: str, wave: int) -> None:
    from mcp.client import Client

    async with Client(url) as client:
        for text in STORE_TEXTS:
            result = await client.call_tool(
                "qdrant-store", {"information": f"{text} (wave {wave})", "collection_name": "obs-test"}
            )
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
# SERVER_INSTRUMENTS): a counter's first refusal, a cgroup memory limit. The dashboard's Health
# row and the alert rules use them; test_dashboards.py requires data from a panel query as soon
# as the live server exports every metric it uses.
CONDITIONAL_SERVER_INSTRUMENTS = [
    ("qdrant_mcp.embedding.rejected", "{call}", "counter", ()),  # calls refused because the queue was full
    ("qdrant_mcp.memory.limit", "By", "gauge", ()),  # cgroup memory limit; absent when unlimited
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
