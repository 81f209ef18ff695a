"""Grafana dashboards: valid JSON, provisioned datasource uids only, PromQL that parses, metric
names from the contracts, and (MCP server dashboard) every query returns real data from a real
Prometheus that scraped the real server after real tool calls.

Qdrant dashboard: no Qdrant server runs in this suite (the MCP server uses in-memory Qdrant,
which has no /metrics), so its panels are checked to parse, to use metric names from Qdrant's
documented /metrics set, and to get data from the response series the upstream job's own calls
leave in Qdrant v1.19.0's /metrics (a real Prometheus scrapes them as v1.19.0 reports them). They
get real data in the compose stack.

MCP server dashboard, Health row: its panels may also use series that this suite cannot
produce: the collector's own metrics, Prometheus' ALERTS, and the server instruments that exist
only once something happened (obs_support.CONDITIONAL_SERVER_INSTRUMENTS). Those queries are checked to
parse and to use known names; a query needs data as soon as the live server exports every
metric it uses. Every other panel must use only the server contract and return data, as before.
"""

from __future__ import annotations

import re

import pytest
from obs_support import (
    ALERT_SERIES,
    PROVISIONED_UIDS,
    QDRANT_METRICS,
    QDRANT_STATE_METRICS,
    SERVICE_NAME,
    UPSTREAM_QDRANT_CALLS,
    ExpositionServer,
    all_panels,
    collector_series_names,
    conditional_series_names,
    expected_series_names,
    exposition,
    finite_values,
    load_dashboards,
    prometheus_targets,
    promql_metric_names,
    qdrant_response_samples,
    row_title,
    start_prometheus,
    stop,
    substitute,
    variable_values,
    wait_until,
)

DASHBOARDS = load_dashboards()
MCP = "mcp-server.json"
QDRANT = "qdrant.json"
HEALTH_ROW = "Health"
# Series the Health row may use besides the server contract (see the module docstring).
HEALTH_ONLY_SERIES = conditional_series_names() | collector_series_names() | ALERT_SERIES


def _mcp_queries() -> list[tuple[dict, str, dict]]:
    """(panel, substituted expr, target) for every Prometheus query of the MCP dashboard."""
    d = DASHBOARDS[MCP]
    variables = variable_values(d)
    out = []
    for panel in all_panels(d):
        for t in panel.get("targets", []):
            ds = t.get("datasource") or panel.get("datasource") or {}
            if ds.get("uid") == "prometheus" and t.get("expr"):
                out.append((panel, substitute(t["expr"], variables), t))
    return out


def test_expected_dashboards_exist():
    assert {MCP, QDRANT} <= set(DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_structure(name):
    d = DASHBOARDS[name]
    assert d.get("uid") and d.get("title")
    assert not d.get("id"), "provisioned dashboards must not carry a database id"
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in all_panels(d):
        assert "gridPos" in p, p.get("title")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_datasource_uids_are_provisioned(name):
    d = DASHBOARDS[name]
    for p in all_panels(d):
        if p["type"] == "row":
            continue
        refs = [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]
        for ref in refs:
            if ref is None and p["type"] == "text":
                continue
            assert isinstance(ref, dict), f"{p['title']}: datasource must be an object with a uid, got {ref!r}"
            assert ref.get("uid") in PROVISIONED_UIDS, f"{p['title']}: datasource uid {ref.get('uid')!r}"
    for v in d.get("templating", {}).get("list", []):
        if "datasource" in v:
            assert v["datasource"]["uid"] in PROVISIONED_UIDS, v["name"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_job_filter_and_variables_default_to_all(name):
    d = DASHBOARDS[name]
    for _, expr, _t in prometheus_targets(d):
        assert not re.search(r"\bjob\s*=", expr), f"do not filter on job (service name): {expr}"
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            assert v.get("includeAll"), f"variable {v['name']} must offer All"
            assert v["current"]["value"] in (["$__all"], "$__all"), f"variable {v['name']} must default to All"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_promql_expression_parses(name, prometheus_only):
    d = DASHBOARDS[name]
    targets = prometheus_targets(d)
    assert targets
    for title, expr, _ in targets:
        body = prometheus_only.query(expr)
        assert body.get("status") == "success", f"{name} / {title}: {expr}\n -> {body.get('error')}"
    for expr in _variable_exprs(d):
        assert prometheus_only.query(expr).get("status") == "success", expr


def _variable_exprs(d: dict) -> list[str]:
    """label_values(selector, label) -> `count by (label) (selector)` to check it."""
    out = []
    for v in d.get("templating", {}).get("list", []):
        q = v.get("definition") or (v.get("query") or {}).get("query", "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q or "")
        if m:
            out.append(f"count by ({m.group(2)}) ({substitute(m.group(1), variable_values(d))})")
    return out


def test_mcp_dashboard_uses_only_contract_metrics():
    # Outside the Health row: the server contract only. Health row: also the collector's
    # metrics, ALERTS and the conditional server instruments.
    contract = set(expected_series_names())
    d = DASHBOARDS[MCP]
    for panel, expr, _ in _mcp_queries():
        health = row_title(d, panel) == HEALTH_ROW
        allowed = contract | HEALTH_ONLY_SERIES if health else contract
        unknown = promql_metric_names(expr) - allowed
        assert not unknown, f"{panel['title']}: {sorted(unknown)} not in the server metric contract"


def test_mcp_dashboard_health_row_on_top():
    d = DASHBOARDS[MCP]
    first = min(d["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    assert first["type"] == "row" and first["title"] == HEALTH_ROW and first["gridPos"]["y"] == 0
    assert not first.get("collapsed"), "the Health row must be open"
    health = [(p, e) for p, e, _ in _mcp_queries() if row_title(d, p) == HEALTH_ROW]
    names = set().union(*(promql_metric_names(e) for _, e in health))
    # server up / last export, sessions vs limit, embedding queue vs capacity and refusals,
    # the collector's pipeline per signal, firing alerts
    for needed in (
        "process_memory_usage_bytes",
        "qdrant_mcp_sessions_open",
        "qdrant_mcp_sessions_limit",
        "qdrant_mcp_embedding_queue_size",
        "qdrant_mcp_embedding_queue_capacity",
        "qdrant_mcp_embedding_rejected_total",
        "ALERTS",
    ):
        assert needed in names, f"Health row should show {needed}"
    for stage in ("receiver_accepted", "receiver_refused", "exporter_sent", "exporter_send_failed"):
        for items in ("spans", "metric_points", "log_records"):
            assert f"otelcol_{stage}_{items}_total" in names, f"Health row should show otelcol_{stage}_{items}"


def test_qdrant_dashboard_uses_documented_qdrant_metrics():
    # Checked by name only; see the module docstring.
    seen = set()
    for title, expr, _ in prometheus_targets(DASHBOARDS[QDRANT]):
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        unknown = names - QDRANT_METRICS
        assert not unknown, f"{title}: {sorted(unknown)} are not Qdrant /metrics names"
        seen |= names
    for needed in (
        "collections_total",
        "collection_points",
        "rest_responses_total",
        "rest_responses_duration_seconds_bucket",
        "grpc_responses_total",
        "memory_resident_bytes",
        "memory_allocated_bytes",
        "app_info",
    ):
        assert needed in seen, f"Qdrant dashboard should show {needed}"


def test_qdrant_queries_the_upstream_job_asserts_get_data_from_its_own_traffic(tmp_path):
    """tests/stack/test_upstream_stack.py requires data from every Qdrant dashboard query after
    its own traffic (obs_support.UPSTREAM_QDRANT_CALLS). The response series those calls leave
    in Qdrant v1.19.0's /metrics, scraped by a real Prometheus, must answer every query on
    them (a failure panel needs a failed call); the other queries use series that do not
    depend on the calls (obs_support.QDRANT_STATE_METRICS)."""
    queries = prometheus_targets(DASHBOARDS[QDRANT])  # substituted as the upstream test does
    traffic_queries = []
    for title, expr, _ in queries:
        names = promql_metric_names(expr)
        driven = {n for n in names if n.startswith(("rest_responses_", "grpc_responses_"))}
        assert driven or names <= QDRANT_STATE_METRICS, f"{title}: {sorted(names - QDRANT_STATE_METRICS)}"
        assert not driven or driven == names, f"{title}: mixes call-driven and state series: {expr}"
        if driven:
            traffic_queries.append((title, expr))
    assert any("status" in expr for _, expr in traffic_queries), "no failure panel to tie to a failed call"
    samples = qdrant_response_samples(UPSTREAM_QDRANT_CALLS.values())
    server = ExpositionServer(exposition(samples))
    proc, prom, log = start_prometheus(tmp_path, {"qdrant": server.target})
    try:
        # rate() over the dashboards' 1m window needs two scrapes.
        scraped = "max(count_over_time(rest_responses_total[1m]))"
        wait_until(lambda: (finite_values(prom.series(scraped)) or [0])[0] >= 2, 30, "two scrapes", proc, log)
        empty = [f"{title}: {expr}" for title, expr in traffic_queries if not prom.series(expr)]
    finally:
        stop(proc)
        server.shutdown()
        server.server_close()
    assert not empty, "no data after the upstream job's calls:\n" + "\n".join(empty)


def test_mcp_dashboard_links_to_traces_and_logs():
    d = DASHBOARDS[MCP]
    tempo = [
        t for p in all_panels(d) for t in p.get("targets", []) if (t.get("datasource") or {}).get("uid") == "tempo"
    ]
    assert tempo, "no Tempo traces panel"
    assert any(f'resource.service.name="{SERVICE_NAME}"' in t["query"] for t in tempo)
    loki = [t for p in all_panels(d) for t in p.get("targets", []) if (t.get("datasource") or {}).get("uid") == "loki"]
    assert any(f'service_name="{SERVICE_NAME}"' in t["expr"] for t in loki)
    assert any("/explore" in link.get("url", "") for link in d.get("links", []))


# ----------------------------------------------------------------------------- live data


def _exported_conditional(live) -> set[str]:
    """Pending server instruments that the live server already exports."""
    conditional = sorted(conditional_series_names())
    series = live.prom.series(f'count by (__name__) ({{__name__=~"{"|".join(conditional)}"}})')
    return {s["metric"]["__name__"] for s in series}


def test_mcp_dashboard_queries_return_data(live):
    d = DASHBOARDS[MCP]
    must_have_data = set(expected_series_names()) | _exported_conditional(live)
    empty = []
    for panel, expr, target in _mcp_queries():
        title = panel["title"]
        if not promql_metric_names(expr) <= must_have_data:
            # Collector / ALERTS / not-yet-exported server series: parse and names are checked
            # above; only the Health row may hold such queries.
            assert row_title(d, panel) == HEALTH_ROW, f"{title}: {expr} uses series outside the server contract"
            continue
        series = live.prom.series(expr)
        values = finite_values(series)
        if not values:
            empty.append(f"{title}: {expr} -> {series}")
            continue
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            assert any(s["metric"].get(label) for s in series), f"{title}: no series has label {label}: {series}"
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_mcp_dashboard_variables_have_values(live):
    for expr in _variable_exprs(DASHBOARDS[MCP]):
        series = live.prom.series(expr)
        assert series, f"variable query has no values: {expr}"


def test_tool_call_series_look_right(live):
    tools = {
        s["metric"].get("gen_ai_tool_name")
        for s in live.prom.series(
            'sum by (gen_ai_tool_name) (mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call"})'
        )
    }
    assert {"qdrant-store", "qdrant-find"} <= tools
    errors = live.prom.series(
        'sum by (gen_ai_tool_name, error_type) (mcp_server_operation_duration_seconds_count{error_type!=""})'
    )
    assert any(s["metric"].get("gen_ai_tool_name") == "qdrant-find" for s in errors), errors
    stored = finite_values(live.prom.series('sum(qdrant_mcp_points_stored_total{db_collection_name="obs-test"})'))
    assert stored and stored[0] >= 4
    hits = finite_values(live.prom.series('sum(qdrant_mcp_hits_returned_total{db_collection_name="obs-test"})'))
    assert hits and hits[0] >= 1
    # Durations are in seconds: a tools/call takes well under 10 s, and the histogram must
    # resolve sub-second latencies (i.e. use second-scale bucket boundaries).
    p50 = finite_values(
        live.prom.series(
            "histogram_quantile(0.5, sum by (le) "
            '(mcp_server_operation_duration_seconds_bucket{mcp_method_name="tools/call"}))'
        )
    )
    assert p50 and p50[0] < 2.5, f"p50 {p50}: histogram buckets are not second-scale"
