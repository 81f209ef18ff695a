"""Tempo, Loki and Grafana provisioning files contain what the stack needs."""

from __future__ import annotations

import json

import pytest
from obs_support import GRAFANA, OTEL, load_yaml

UIDS = {"prometheus", "tempo", "loki"}


def test_tempo_config():
    cfg = load_yaml(OTEL / "tempo" / "tempo.yaml")
    assert cfg["server"]["http_listen_port"] == 3200
    protocols = cfg["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    trace = cfg["storage"]["trace"]
    assert trace["backend"] == "local"
    for key in ("wal", "local"):
        assert trace[key]["path"].startswith("/var/tempo/"), f"tempo {key} path must be on the /var/tempo volume"
    assert "ingester" not in cfg, "Tempo 3 has no ingesters"


def test_loki_config():
    cfg = load_yaml(OTEL / "loki" / "loki.yaml")
    assert cfg["auth_enabled"] is False
    assert cfg["server"]["http_listen_port"] == 3100
    common = cfg["common"]
    assert common["path_prefix"] == "/loki"
    for d in common["storage"]["filesystem"].values():
        assert d.startswith("/loki/")
    # OTLP ingestion needs structured metadata, which needs tsdb + schema v13.
    latest = cfg["schema_config"]["configs"][-1]
    assert latest["store"] == "tsdb" and latest["schema"] == "v13"
    assert cfg.get("limits_config", {}).get("allow_structured_metadata", True) is True


@pytest.fixture(scope="module")
def datasources() -> dict:
    cfg = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yaml")
    assert cfg["apiVersion"] == 1
    return {d["uid"]: d for d in cfg["datasources"]}


def test_datasources_and_cross_links(datasources):
    assert set(datasources) == UIDS
    prom, tempo, loki = datasources["prometheus"], datasources["tempo"], datasources["loki"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    assert tempo["type"] == "tempo" and tempo["url"] == "http://tempo:3200"
    assert loki["type"] == "loki" and loki["url"] == "http://loki:3100"
    ex = prom["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "tempo"}.items() <= ex[0].items()
    t2l = tempo["jsonData"]["tracesToLogsV2"]
    assert t2l["datasourceUid"] == "loki" and t2l["filterByTraceID"] is True
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"
    df = loki["jsonData"]["derivedFields"][0]
    assert df["datasourceUid"] == "tempo" and df["matcherRegex"] == "trace_id"


def test_no_admin_password_in_provisioning():
    for path in (GRAFANA / "provisioning").rglob("*"):
        if path.is_file():
            text = path.read_text().lower()
            assert "admin_password" not in text and "basicauthpassword" not in text, path


def test_dashboard_provider_points_at_mounted_dir():
    cfg = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml")
    providers = cfg["providers"]
    assert len(providers) == 1
    p = providers[0]
    assert p["type"] == "file"
    assert p["options"]["path"] == "/var/lib/grafana/dashboards"
    assert p["folder"]


def test_dashboards_are_json_with_unique_uids():
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert len(files) >= 2
    uids = [json.loads(f.read_text())["uid"] for f in files]
    assert len(set(uids)) == len(uids)
