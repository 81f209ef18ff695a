"""Metric names: the Python Prometheus exporter (test path) vs Prometheus 3's OTLP translation
(compose path) must give the same series names and label names for the server's instruments,
and the running server must export them."""

from __future__ import annotations

from obs_support import (
    CONDITIONAL_SERVER_INSTRUMENTS,
    SERVER_INSTRUMENTS,
    expected_series_names,
    http_get,
    otlp_translated_label,
    otlp_translated_name,
)
from prometheus_client.parser import text_string_to_metric_families


def test_translator_port_matches_documented_examples():
    # Examples from prometheus/otlptranslator's docs and tests.
    assert otlp_translated_name("http.server.duration", "s", "histogram") == "http_server_duration_seconds"
    assert otlp_translated_name("requests.count", "1", "counter") == "requests_count_total"
    assert otlp_translated_name("memory.usage", "By", "gauge") == "memory_usage_bytes"
    assert otlp_translated_name("system.cpu.utilization", "1", "gauge") == "system_cpu_utilization_ratio"
    assert otlp_translated_name("rate", "By/s", "gauge") == "rate_bytes_per_second"
    assert otlp_translated_name("x.batch_size", "{text}", "histogram") == "x_batch_size"


def _exposition_names(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(k for k, v in s.labels.items() if v != "")
    return out


def test_python_exporter_names_equal_otlp_translation():
    """Record the contract instruments in-process with opentelemetry-exporter-prometheus and
    compare with the OTLP translation (labels with empty values are the same as absent)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY, generate_latest

    reader = PrometheusMetricReader()  # registers its collector in the global REGISTRY
    provider = MeterProvider(metric_readers=[reader])
    try:
        meter = provider.get_meter("obs-test")
        for name, unit, kind, attrs in SERVER_INSTRUMENTS:
            values = dict.fromkeys(attrs, "v")
            if kind == "histogram":
                meter.create_histogram(name, unit=unit).record(1, values)
            elif kind == "counter" and name == "process.cpu.time":
                meter.create_observable_counter(name, callbacks=[lambda _o, v=values: [Observation(1.0, v)]], unit=unit)
            elif kind == "counter":
                meter.create_counter(name, unit=unit).add(1, values)
            else:
                meter.create_observable_gauge(name, callbacks=[lambda _o, v=values: [Observation(1.0, v)]], unit=unit)
        seen = _exposition_names(generate_latest(REGISTRY).decode())
    finally:
        provider.shutdown()  # also unregisters the collector
    scope_labels = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
    for series, labels in expected_series_names().items():
        assert series in seen, f"exporter does not produce {series}; it has {sorted(seen)}"
        assert seen[series] - scope_labels == labels, f"{series}: exporter labels {seen[series]} vs OTLP {labels}"


def test_conditional_instruments_get_the_same_names_on_both_paths():
    """The new instruments (alert rules and the dashboard's Health row use them already) get
    the same Prometheus names from the Python exporter (the live test path) as from Prometheus
    3's OTLP translation (the compose path)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY, generate_latest

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        meter = provider.get_meter("obs-test-conditional")
        for name, unit, kind, _ in CONDITIONAL_SERVER_INSTRUMENTS:
            if kind == "counter":
                meter.create_counter(name, unit=unit).add(1)
            else:
                meter.create_observable_gauge(name, callbacks=[lambda _o: [Observation(1.0)]], unit=unit)
        seen = _exposition_names(generate_latest(REGISTRY).decode())
    finally:
        provider.shutdown()
    for name, unit, kind, _ in CONDITIONAL_SERVER_INSTRUMENTS:
        assert otlp_translated_name(name, unit, kind) in seen, f"{name}: exporter has {sorted(seen)}"


def test_running_server_exports_the_contract(live):
    status, body = http_get(live.metrics_url)
    assert status == 200
    seen = _exposition_names(body.decode())
    expected = expected_series_names()
    missing = sorted(set(expected) - set(seen))
    assert not missing, f"server does not export {missing}"
    for series, labels in expected.items():
        extra = seen[series] - labels - {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
        assert not extra, f"{series} has labels outside the contract: {extra}"
    # The failing call carries error.type; successful ones do not.
    fams = {
        s.name: s
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
        if s.name == "mcp_server_operation_duration_seconds_count" and s.labels.get("error_type")
    }
    assert fams, "no mcp_server_operation_duration_seconds_count sample with error_type (the failing call)"


# ----------------------------------------------------------------------------- the real OTLP path


def _otlp_series(requests: list) -> tuple[dict[str, set[str]], list[str]]:
    """Prometheus 3 series names -> label names, by otlptranslator rules; plus problems."""
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

    out: dict[str, set[str]] = {}
    problems = []
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind == "sum":
                        points, prom_kind = m.sum.data_points, "counter" if m.sum.is_monotonic else "gauge"
                        if m.sum.aggregation_temporality != AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE:
                            problems.append(f"{m.name}: delta temporality (Prometheus rejects it)")
                    elif kind == "gauge":
                        points, prom_kind = m.gauge.data_points, "gauge"
                    elif kind == "histogram":
                        points, prom_kind = m.histogram.data_points, "histogram"
                        if (
                            m.histogram.aggregation_temporality
                            != AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
                        ):
                            problems.append(f"{m.name}: delta temporality (Prometheus rejects it)")
                    else:
                        problems.append(f"{m.name}: {kind} (exponential histograms have no _bucket series)")
                        continue
                    if m.unit == "1" and prom_kind == "gauge":
                        problems.append(f"{m.name}: unit 1 on a gauge gets _ratio only on the OTLP path")
                    base = otlp_translated_name(m.name, m.unit, prom_kind)
                    labels = {otlp_translated_label(a.key) for p in points for a in p.attributes}
                    names = [base + s for s in ("_bucket", "_sum", "_count")] if prom_kind == "histogram" else [base]
                    for n in names:
                        out.setdefault(n, set()).update(labels | ({"le"} if n.endswith("_bucket") else set()))
    return out, problems


def test_otlp_path_and_exporter_path_give_identical_names(otlp_export, live):
    otlp, problems = _otlp_series(otlp_export.metrics)
    assert not problems, problems
    status, body = http_get(live.metrics_url)
    assert status == 200
    scraped = _exposition_names(body.decode())
    scope_labels = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
    for series in expected_series_names():
        assert series in otlp, f"{series} not produced on the OTLP path ({sorted(otlp)})"
        assert series in scraped, f"{series} not produced by the Prometheus exporter"
        # Label *names* per series; a label only present on failures (error_type) may be
        # missing on one side if that side saw no failure of that kind, so compare subsets
        # against the contract rather than against each other.
        assert otlp[series] <= expected_series_names()[series], f"{series}: OTLP labels {otlp[series]}"
        assert scraped[series] - scope_labels <= expected_series_names()[series], series
    server_names = {n for n in otlp if not n.startswith(("target_info",))}
    assert server_names <= set(scraped), f"only on the OTLP path: {sorted(server_names - set(scraped))}"
