"""The collector config is consistent with itself, with the 0.161 component names and with
compose.yaml (service names, ports, mounts, secrets)."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from obs_support import GRAFANA, OTEL, REPO, compose_default, load_yaml

CONFIG = OTEL / "collector" / "config.yaml"
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")

# Renamed or removed component types. Bare `otlp` is still fine as a *receiver*.
DEPRECATED = {
    "exporters": {
        "otlp": "otlp_grpc",
        "otlphttp": "otlp_http",
        "logging": "debug",
        "loki": "otlp_http (Loki native OTLP)",
        "spanmetrics": "span_metrics connector",
    },
    "processors": {
        "resourcedetection": "resource_detection",
        "spanmetrics": "span_metrics connector",
        "batch": "the exporters' sending_queue.batch (the processor is deprecated from 0.160)",
    },
    "connectors": {"spanmetrics": "span_metrics"},
    "receivers": {"hostmetrics": "host_metrics"},
    "extensions": {},
}

# Container ports each compose service listens on (from the images / our own configs).
SERVICE_PORTS = {
    "qdrant": {6333, 6334},
    "prometheus": {9090},
    "tempo": {3200, 4317, 4318},
    "loki": {3100},
    "mcp-server": {8000},
    "otel-collector": {4317, 4318, 13133},
    "grafana": {3000},
}


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_yaml(CONFIG)


def ctype(name: str) -> str:
    return name.split("/", 1)[0]


def test_every_referenced_component_is_defined(cfg):
    service = cfg["service"]
    for ext in service.get("extensions", []):
        assert ext in (cfg.get("extensions") or {}), f"extension {ext} not defined"
    pipelines = service["pipelines"]
    assert {"traces", "metrics", "logs"} <= {ctype(p) for p in pipelines}
    connectors = cfg.get("connectors") or {}
    for pname, p in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for comp in p.get(kind, []):
                defined = cfg.get(kind) or {}
                if kind in ("receivers", "exporters") and comp in connectors:
                    continue
                assert comp in defined, f"pipeline {pname}: {kind[:-1]} {comp} is not defined"
        assert p.get("receivers") and p.get("exporters"), f"pipeline {pname} needs receivers and exporters"


def test_every_defined_component_is_used(cfg):
    service = cfg["service"]
    used = set(service.get("extensions", []))
    for p in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            used.update(p.get(kind, []))
    for section in SECTIONS:
        for comp in cfg.get(section) or {}:
            assert comp in used, f"{section[:-1]} {comp} is defined but not used in any pipeline"


def test_no_deprecated_component_names(cfg):
    for section, renamed in DEPRECATED.items():
        for comp in cfg.get(section) or {}:
            assert ctype(comp) not in renamed, f"{section}: `{comp}` is deprecated, use `{renamed[ctype(comp)]}`"
    text = CONFIG.read_text()
    for old in ("otlphttp", "resourcedetection", "spanmetrics", "logging:"):
        assert old not in re.sub(r"#.*", "", text), f"deprecated name {old!r} in {CONFIG.name}"


# exporterhelper's queue and batch settings, read at collector core v0.159.0 (the newest source
# here; the image is 0.161.0): exporter/exporterhelper/internal/queue_sender.go
# NewDefaultQueueConfig (the defaults) and internal/queuebatch/config.go (the keys, Validate).
QUEUE_DEFAULTS = {"sizer": "requests", "queue_size": 1000, "num_consumers": 10}
QUEUE_KEYS = {"enabled", "wait_for_result", "sizer", "queue_size", "block_on_overflow", "storage", "num_consumers"}
BATCH_DEFAULTS = {"flush_timeout": "200ms", "sizer": "items", "min_size": 8192, "max_size": 0}
BATCH_KEYS = {"flush_timeout", "sizer", "min_size", "max_size", "partition"}


def _go_duration_s(value: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a Go duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _queue_problems(queue: dict) -> list[str]:
    """What exporterhelper would reject (Config.Validate, BatchConfig.Validate) or ignore."""
    batch = queue.get("batch")
    if not isinstance(batch, dict):
        return ["no sending_queue.batch: the exporter sends every incoming request on its own"]
    problems = [f"unknown sending_queue key {k}" for k in sorted(set(queue) - QUEUE_KEYS - {"batch"})]
    problems += [f"unknown batch key {k}" for k in sorted(set(batch) - BATCH_KEYS)]
    q = {**QUEUE_DEFAULTS, **{k: v for k, v in queue.items() if k != "batch"}}
    # Unmarshal: an explicit queue sizer is inherited by a batch that sets none.
    b = {**BATCH_DEFAULTS, **({"sizer": queue["sizer"]} if "sizer" in queue else {}), **batch}
    if queue.get("enabled") is False:
        problems.append("sending_queue disabled: no batching")
    if q["num_consumers"] <= 0 or q["queue_size"] <= 0:
        problems.append("num_consumers and queue_size must be positive")
    if b["sizer"] not in ("items", "bytes"):
        problems.append(f"batch supports only the items or bytes sizer, not {b['sizer']!r}")
    if _go_duration_s(str(b["flush_timeout"])) <= 0:
        problems.append("flush_timeout must be positive")
    if b["min_size"] < 0 or b["max_size"] < 0 or (b["max_size"] and b["max_size"] < b["min_size"]):
        problems.append(f"min_size {b['min_size']} / max_size {b['max_size']} are inconsistent")
    if b["sizer"] == q["sizer"] and b["min_size"] > q["queue_size"]:
        problems.append("min_size must not exceed queue_size")
    return problems


def test_exporters_batch_in_their_queue_instead_of_the_batch_processor(cfg):
    """The batch processor is deprecated from 0.160 and leaves the default image later (the
    collector's batching-migration RFC); every exporter batches in its sending_queue instead."""
    processors = {ctype(p) for p in cfg.get("processors") or {}}
    assert "batch" not in processors
    exporters = {e for p in cfg["service"]["pipelines"].values() for e in p["exporters"]}
    for name in sorted(exporters):
        problems = _queue_problems(cfg["exporters"][name].get("sending_queue") or {})
        assert not problems, f"{name}: {problems}"


def test_queue_check_rejects_what_exporterhelper_rejects():
    assert _queue_problems({"batch": {}}) == []
    assert _queue_problems({}), "no batch section"
    assert _queue_problems({"sizer": "requests", "batch": {"sizer": "requests"}}), "requests sizer"
    assert _queue_problems({"sizer": "items", "queue_size": 100, "batch": {"min_size": 200}}), "min > queue"
    assert _queue_problems({"batch": {"flush_timeout": "0s"}}), "zero timeout"
    assert _queue_problems({"batch": {"send_batch_size": 10}}), "a batch-processor key"


def test_the_collector_does_not_stamp_its_host_on_forwarded_telemetry(cfg):
    """Resource detectors describe the machine the collector runs on. Every pipeline forwards
    other processes' telemetry (the server's, Qdrant's), whose resource is theirs to set: a
    `system` (or docker, cloud) detector would give them the collector container's host.name."""
    for name, conf in (cfg.get("processors") or {}).items():
        if ctype(name) in ("resource_detection", "resourcedetection"):
            host_detectors = set((conf or {}).get("detectors", [])) - {"env"}
            assert not host_detectors, f"{name}: detectors {sorted(host_detectors)} describe the collector's host"


def test_pipelines_route_signals_to_the_right_backend(cfg):
    pipes = cfg["service"]["pipelines"]
    exp = cfg["exporters"]

    def endpoints(signal):
        return [exp[e]["endpoint"] for name, p in pipes.items() if ctype(name) == signal for e in p["exporters"]]

    assert "http://prometheus:9090/api/v1/otlp" in endpoints("metrics")
    assert "tempo:4317" in endpoints("traces")
    assert "http://loki:3100/otlp" in endpoints("logs")
    metric_receivers = {r for name, p in pipes.items() if ctype(name) == "metrics" for r in p["receivers"]}
    assert {"otlp", "prometheus/qdrant"} <= metric_receivers
    for name, p in pipes.items():
        procs = p.get("processors", [])
        assert procs and procs[0] == "memory_limiter", f"{name}: memory_limiter must come first"


def test_listen_addresses(cfg):
    otlp = cfg["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert otlp["http"]["endpoint"] == "0.0.0.0:4318"
    assert cfg["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


def test_qdrant_scrape_uses_the_read_only_api_key(cfg):
    scrape = cfg["receivers"]["prometheus/qdrant"]["config"]["scrape_configs"]
    assert len(scrape) == 1
    job = scrape[0]
    assert job["static_configs"][0]["targets"] == ["qdrant:6333"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/qdrant_read_only_api_key"}


def _host_ports(cfg) -> list[tuple[str, str, int]]:
    """(component, host, port) for every outgoing endpoint and scrape target."""
    out = []
    for name, conf in (cfg.get("exporters") or {}).items():
        ep = conf["endpoint"]
        u = urlparse(ep if "://" in ep else f"grpc://{ep}")
        out.append((name, u.hostname, u.port or (443 if u.scheme == "https" else 80)))
    for name, conf in (cfg.get("receivers") or {}).items():
        if ctype(name) != "prometheus":
            continue
        for job in conf["config"]["scrape_configs"]:
            for sc in job["static_configs"]:
                for t in sc["targets"]:
                    host, port = t.rsplit(":", 1)
                    out.append((name, host, int(port)))
    return out


def test_endpoints_agree_with_compose(cfg, compose):
    services = compose["services"]
    for comp, host, port in _host_ports(cfg):
        if host in ("127.0.0.1", "localhost"):
            continue  # the collector's own telemetry
        assert host in services, f"{comp}: host {host} is not a compose service ({sorted(services)})"
        assert port in SERVICE_PORTS[host], f"{comp}: {host} does not listen on {port}"


def _mounts(service: dict, compose: dict) -> dict[str, str]:
    """container path -> normalised host path, from volumes (short/long) and configs."""
    out = {}
    for v in service.get("volumes", []) or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) >= 2:
                out[parts[1]] = parts[0]
        elif v.get("type", "bind") == "bind" or str(v.get("source", "")).startswith("."):
            out[v["target"]] = v["source"]
    top = compose.get("configs") or {}
    for c in service.get("configs", []) or []:
        if isinstance(c, dict) and c.get("source") in top and "file" in top[c["source"]]:
            out[c.get("target", "/" + c["source"])] = top[c["source"]]["file"]
    return {k: str((REPO / v).resolve().relative_to(REPO)) if v.startswith(".") else v for k, v in out.items()}


def _secret_names(service: dict) -> set[str]:
    return {s if isinstance(s, str) else s.get("target", s["source"]) for s in service.get("secrets", []) or []}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd if isinstance(cmd, list) else cmd.split()


def _config_flag(service: dict, flags: tuple[str, ...], default: str) -> str:
    cmd = _command(service)
    for i, arg in enumerate(cmd):
        for flag in flags:
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
            if arg == flag and i + 1 < len(cmd):
                return cmd[i + 1]
    return default


def test_compose_mounts_our_files(compose):
    svc = compose["services"]
    # service -> (our file, the path the process reads: its config flag, else the image default)
    expect = {
        "otel-collector": (
            "otel/collector/config.yaml",
            _config_flag(svc["otel-collector"], ("--config",), "/etc/otelcol-contrib/config.yaml"),
        ),
        "prometheus": (
            "otel/prometheus/prometheus.yaml",
            _config_flag(svc["prometheus"], ("--config.file",), "/etc/prometheus/prometheus.yml"),
        ),
        "tempo": ("otel/tempo/tempo.yaml", _config_flag(svc["tempo"], ("-config.file", "--config.file"), "")),
        "loki": (
            "otel/loki/loki.yaml",
            _config_flag(svc["loki"], ("-config.file", "--config.file"), "/etc/loki/local-config.yaml"),
        ),
    }
    for name, (source, target) in expect.items():
        assert target, f"{name}: no config file flag"
        got = _mounts(svc[name], compose)
        assert got.get(target) == source, f"{name}: reads {target}, but {source} is not mounted there ({got})"
    got = _mounts(svc["grafana"], compose)
    assert got.get("/etc/grafana/provisioning") == "grafana/provisioning", got
    assert got.get("/var/lib/grafana/dashboards") == "grafana/dashboards", got


def _container_path(host_file: str, compose: dict) -> str | None:
    """Where compose mounts a repository file (itself or a folder holding it), if anywhere."""
    for service in compose["services"].values():
        for target, source in _mounts(service, compose).items():
            if host_file == source or host_file.startswith(source + "/"):
                return target + host_file[len(source) :]
    return None


def test_header_comments_name_the_path_compose_mounts_them_at(compose):
    """Where a config file's header says the file is mounted, compose mounts it there."""
    claims = {}
    for path in sorted([*OTEL.rglob("*.yaml"), *(GRAFANA / "provisioning").rglob("*.yaml")]):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("# "))
        for stated in re.findall(r"mounted at\s+(/[\w./-]*\.ya?ml)\b", " ".join(header), re.IGNORECASE):
            claims[str(path.relative_to(REPO))] = stated
    assert len(claims) >= 3, claims  # the collector's, Prometheus' and Loki's headers say it
    wrong = {f: (stated, _container_path(f, compose)) for f, stated in claims.items()}
    wrong = {f: pair for f, pair in wrong.items() if pair[0] != pair[1]}
    assert not wrong, f"header says / compose mounts: {wrong}"


def test_compose_collector_has_only_the_read_only_qdrant_key(compose):
    assert _secret_names(compose["services"]["otel-collector"]) == {"qdrant_read_only_api_key"}


def test_compose_prometheus_enables_otlp_receiver_and_exemplars(compose):
    cmd = _command(compose["services"]["prometheus"])
    assert "--web.enable-otlp-receiver" in cmd
    # Exemplars (trace_id) on the latency panels need exemplar storage.
    assert any(c.startswith("--enable-feature=") and "exemplar-storage" in c for c in cmd)


def test_compose_images_are_the_pinned_ones(compose):
    svc = compose["services"]
    pins = {
        "otel-collector": "otel/opentelemetry-collector-contrib:0.161.0",
        "prometheus": "prom/prometheus:v3.14.0",
        "tempo": "grafana/tempo:3.0.3",
        "loki": "grafana/loki:3.7.6",
        "grafana": "grafana/grafana:13.2.2",
    }
    for name, image in pins.items():
        assert str(svc[name].get("image", "")).split("@")[0] == image, f"{name}: image {svc[name].get('image')}"


def test_mcp_server_sends_otlp_to_the_collector(compose):
    env = compose["services"]["mcp-server"].get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env if "=" in e)
    env = {k: compose_default(str(v)) for k, v in env.items()}
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    assert urlparse(endpoint).hostname == "otel-collector", f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint!r}"
    assert urlparse(endpoint).port in (4317, 4318)
    assert env.get("OTEL_SERVICE_NAME", "qdrant-mcp") == "qdrant-mcp"
