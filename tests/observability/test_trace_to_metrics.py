"""Grafana's trace-to-metrics links (the Tempo datasource's tracesToMetrics) find the span's series
in Prometheus: the queries Grafana builds for the server's tool-call span run against a real
Prometheus holding the server's real OTLP metrics, labelled as the pinned v3.14.0 labels them."""

from __future__ import annotations

import pytest
from obs_support import (
    GRAFANA,
    OTEL,
    ExpositionServer,
    exposition,
    finite_values,
    load_yaml,
    prometheus_samples_from_otlp,
    start_prometheus,
    stop,
    traces_to_metrics_queries,
    wait_until,
)

TOOL = "qdrant-find"  # the span a user opens: the server's `tools/call qdrant-find`


def _attributes(attributes) -> dict[str, str]:
    return {a.key: a.value.string_value for a in attributes if a.value.WhichOneof("value") == "string_value"}


def _tool_span(traces: list) -> tuple[dict[str, str], dict[str, str]]:
    """(resource attributes, span attributes) of the tool-call span, as Tempo returns them."""
    for request in traces:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if span.name == f"tools/call {TOOL}":
                        return _attributes(rs.resource.attributes), _attributes(span.attributes)
    pytest.fail(f"no `tools/call {TOOL}` span among the exported traces")


@pytest.fixture(scope="module")
def prometheus(otlp_export, tmp_path_factory):
    """A real Prometheus holding the server's OTLP metrics as Prometheus 3.14's receiver stores
    them under otel/prometheus/prometheus.yaml's `otlp:` settings (Debian's build has no OTLP
    receiver: it scrapes them, keeping their job and instance)."""
    otlp_config = load_yaml(OTEL / "prometheus" / "prometheus.yaml").get("otlp") or {}
    samples = prometheus_samples_from_otlp(otlp_export.metrics, otlp_config)
    server = ExpositionServer(exposition(samples))
    proc, prom, log = start_prometheus(tmp_path_factory.mktemp("t2m"), {"otlp": server.target}, honor_labels=True)
    try:
        # rate() needs two samples of a series in its window.
        count = "max(count_over_time(mcp_server_operation_duration_seconds_count[1m]))"
        wait_until(lambda: (finite_values(prom.series(count)) or [0])[0] >= 2, 30, "two scrapes", proc, log)
        yield prom, samples
    finally:
        stop(proc)
        server.shutdown()
        server.server_close()


def test_the_server_job_is_namespace_slash_name(prometheus, otlp_export):
    """The case the links must handle: compose's service.namespace makes job differ from the
    span's service.name."""
    _, samples = prometheus
    resource, _ = _tool_span(otlp_export.traces)
    jobs = {dict(labels).get("job") for name, labels in samples if name.startswith("mcp_server_")}
    assert jobs == {f"{resource['service.namespace']}/{resource['service.name']}"}, jobs
    assert resource["service.namespace"], resource


def test_trace_to_metrics_links_find_the_spans_series(prometheus, otlp_export):
    prom, _ = prometheus
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yaml")["datasources"]
    options = next(d for d in datasources if d["uid"] == "tempo")["jsonData"]["tracesToMetrics"]
    resource, span = _tool_span(otlp_export.traces)
    queries = traces_to_metrics_queries(options, resource, span)
    assert queries, "no trace-to-metrics queries"
    for name, expr in queries:
        # $__tags became matchers: an empty selector would match every service's series.
        assert "$__tags" not in expr and "{}" not in expr, f"{name}: {expr}"
        series = prom.series(expr)
        tools = {s["metric"].get("gen_ai_tool_name") for s in series}
        assert TOOL in tools, f"{name}: {expr} -> {series}"
