"""Metric names: the Python Prometheus exporter (test path) vs Prometheus 3's OTLP translation
(compose path) must give the same series names and label names for the server's instruments,
and the running server must export them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from obs_support import SERVER_INSTRUMENTS, expected_series_names, http_get, otlp_translated_name


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
    from opentelemetry.metrics import Observation
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY, generate_latest

    reader = PrometheusMetricReader()  # registers its collector in the global REGISTRY
    provider = MeterProvider(metric_readers=[reader])
    try:
        meter = provider.get_meter("obs-test")
        for name, unit, kind, attrs in SERVER_INSTRUMENTS:
            values = {a: "v" for a in attrs}
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
    fams = {s.name: s for f in text_string_to_metric_families(body.decode()) for s in f.samples
            if s.name == "mcp_server_operation_duration_seconds_count" and s.labels.get("error_type")}
    assert fams, "no mcp_server_operation_duration_seconds_count sample with error_type (the failing call)"
