"""Prometheus alerting rules (otel/prometheus/rules/): valid for promtool 3, unit-tested with
`promtool test rules` (a firing and a quiet case for every alert), shaped for the people who
get them, built from known metric names, loaded by prometheus.yaml and mounted by compose; their
expressions evaluate against a real Prometheus holding the real server's metrics; Grafana
lists them."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import PurePosixPath

import pytest
from obs_support import (
    GRAFANA,
    OTEL,
    REPO,
    SCRAPE_SERIES,
    collector_series_names,
    conditional_series_names,
    expected_series_names,
    load_yaml,
    promql_metric_names,
    require_binary,
)

PROMETHEUS_DIR = OTEL / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULES = RULES_DIR / "qdrant-mcp.rules.yaml"
RULE_TESTS = RULES_DIR / "qdrant-mcp.rules.test.yaml"
SEVERITIES = {"critical", "warning"}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = require_binary("promtool")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=RULES_DIR, check=False)


def _alerts() -> list[dict]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


ALERTS = _alerts()


def test_promtool_check_rules():
    run = _promtool("check", "rules", str(RULES))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in run.stdout, run.stdout


def test_promtool_test_rules():
    run = _promtool("test", "rules", str(RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout and "FAILED" not in run.stdout, run.stdout


def test_every_alert_has_a_firing_and_a_quiet_case():
    tests = load_yaml(RULE_TESTS)
    assert tests["rule_files"] == [RULES.name]
    firing, quiet = set(), set()
    for case in tests["tests"]:
        for t in case.get("alert_rule_test", []):
            (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {a["alert"] for a in ALERTS}
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - quiet == set(), f"alerts never tested quiet: {sorted(names - quiet)}"
    assert (firing | quiet) <= names, f"tests of unknown alerts: {sorted((firing | quiet) - names)}"


def test_expected_alerts_exist():
    names = {a["alert"] for a in ALERTS}
    for needed in (
        "McpServerDown",
        "QdrantDown",
        "McpToolErrorRateHigh",
        "McpToolLatencyHigh",
        "McpEmbeddingQueueSaturated",
        "McpEmbeddingCallsRejected",
        "McpMemoryNearLimit",
        "McpSessionsNearLimit",
        "McpDiskWritesRefused",
        "McpDiskNearlyFull",
        "OtelCollectorDown",
        "OtelCollectorRefusingData",
        "OtelCollectorExportFailing",
    ):
        assert needed in names


def _readme_anchors() -> set[str]:
    """GitHub-style anchors of the README's headings."""
    out = set()
    for line in (REPO / "README.md").read_text().splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a["alert"])
def test_alert_shape(alert):
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", alert["alert"]), alert["alert"]
    assert alert.get("for"), "every alert waits a little (`for:`) before it fires"
    labels = alert.get("labels") or {}
    assert labels.get("severity") in SEVERITIES, labels
    assert labels.get("component") in {"mcp-server", "qdrant", "otel-collector"}, labels
    ann = alert.get("annotations") or {}
    assert ann.get("summary") and ann.get("description"), ann
    # The value must be in what the reader sees, unless the alert is a state (down, absent).
    if not re.search(r"absent_over_time|== 0\s*$", alert["expr"].strip()):
        assert "$value" in ann["summary"] + ann["description"], "say the value"
    path, _, anchor = ann.get("runbook_url", "").partition("#")
    assert path == "README.md" and anchor in _readme_anchors(), f"runbook_url {ann.get('runbook_url')!r}"
    # The rule fields every Prometheus 3 accepts (the pinned 3.14 and the tests' Debian 3.5).
    assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, set(alert)


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a["alert"])
def test_alert_uses_known_series(alert):
    known = set(expected_series_names()) | conditional_series_names() | collector_series_names() | SCRAPE_SERIES
    names = promql_metric_names(alert["expr"])
    assert names, alert["expr"]
    assert names <= known, f"unknown series {sorted(names - known)}"
    # Dashboards must not filter on the job (service name differs between setups); a rule may,
    # but only with a regex that accepts the job with or without a service.namespace.
    for m in re.finditer(r'\bjob\s*(=~?|!=|!~)\s*"([^"]*)"', alert["expr"]):
        op, value = m.groups()
        if any(n in expected_series_names() or n in conditional_series_names() for n in names):
            assert op == "=~" and re.fullmatch(value, "qdrant-mcp/qdrant-mcp") and re.fullmatch(value, "qdrant-mcp")


def test_conditional_instrument_names():
    # The server instruments that appear only once something happened, as the rules use them.
    assert conditional_series_names() == {
        "qdrant_mcp_embedding_rejected_total",
        "qdrant_mcp_memory_limit_bytes",
        "qdrant_mcp_disk_free_bytes",
        "qdrant_mcp_disk_min_free_bytes",
    }


# ----------------------------------------------------------------------------- wiring


def test_prometheus_config_loads_the_rules():
    cfg = load_yaml(PROMETHEUS_DIR / "prometheus.yaml")
    patterns = cfg.get("rule_files") or []
    assert patterns, "prometheus.yaml has no rule_files"
    matched = {p.name for pattern in patterns for p in PROMETHEUS_DIR.glob(pattern)}
    assert RULES.name in matched, f"{patterns} (relative to otel/prometheus/) do not match {RULES.name}"
    assert RULE_TESTS.name not in matched, "the promtool test file must not be loaded as a rule file"


def _volumes(service: dict) -> dict[str, tuple[str, bool]]:
    """container path -> (host path, read-only) for bind mounts (short and long syntax)."""
    out = {}
    for v in service.get("volumes", []) or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) >= 2 and parts[0].startswith("."):
                out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
        elif v.get("type", "bind") == "bind":
            out[v["target"]] = (v["source"], bool(v.get("read_only")))
    return out


def test_compose_mounts_the_rules_where_the_config_looks(compose):
    prom = compose["services"]["prometheus"]
    cmd = prom.get("command") or []
    config = next((c.split("=", 1)[1] for c in cmd if c.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    mounts = _volumes(prom)
    assert mounts.get(config, ("", False))[0] == "./otel/prometheus/prometheus.yaml"
    for pattern in load_yaml(PROMETHEUS_DIR / "prometheus.yaml")["rule_files"]:
        in_container = PurePosixPath(config).parent / pattern
        # The bind mount holding the pattern's directory, and what it maps to in the repo.
        target = max((t for t in mounts if PurePosixPath(t) in in_container.parents), key=len, default=None)
        assert target, f"no bind mount in the prometheus service covers {in_container} ({mounts})"
        source, read_only = mounts[target]
        assert read_only, f"{target} must be mounted read-only"
        rel = in_container.relative_to(target)
        host_dir = (REPO / source / rel.parent).resolve()
        files = [p.name for p in host_dir.glob("*") if fnmatch.fnmatch(p.name, rel.name)]
        assert RULES.name in files, f"{source} mounted at {target}: {rel} matches {files}"


def test_grafana_lists_the_prometheus_rules():
    # Prometheus has no ruler API: Grafana shows its rules (read-only) under data
    # source-managed rules when the datasource has manageAlerts. Loki holds no rules here.
    cfg = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yaml")
    ds = {d["uid"]: d for d in cfg["datasources"]}
    assert ds["prometheus"]["jsonData"].get("manageAlerts") is True
    assert ds["loki"]["jsonData"].get("manageAlerts") is False


# ----------------------------------------------------------------------------- live


def test_alert_expressions_evaluate_on_real_server_metrics(live):
    """Every rule expression runs without error on the real server's series; the server is
    exporting, so McpServerDown's expression is empty (its job regex matches the real job)."""
    for alert in ALERTS:
        body = live.prom.query(alert["expr"])
        assert body.get("status") == "success", f"{alert['alert']}: {body.get('error')}"
        if alert["alert"] == "McpServerDown":
            assert body["data"]["result"] == [], body["data"]["result"]
