"""The whole stack with the REAL upstream images, end to end (STACK_IMAGES=upstream).

Chosen explicitly, never guessed: the module is skipped with its reason unless
STACK_IMAGES=upstream, and any other value is an error. It needs a Docker engine that can pull
from Docker Hub (CI's `upstream` job on GitHub; not the development machines, which reach no
image registry).

What runs: compose.yaml as users run it in production (no compose.override.yaml), with
tests/stack/compose.upstream.yaml, which only publishes Prometheus, Tempo and Loki on loopback
ports that Docker picks. Those three are internal services; Tempo and Loki are distroless
images with no shell or HTTP client to `docker compose exec` into, so the test talks to their
HTTP APIs through those test-only ports. Secrets come from scripts/secrets (the conftest's
`secrets_dir`), and the server image is STACK_SERVER_IMAGE when set (CI builds it with Buildx
and loads it) or built here with `docker compose build mcp-server`.

What is checked:
  * every service runs the image pinned in compose.yaml, healthy where it has a health check;
  * the MCP server stores and finds through the real Qdrant (mcp SDK client over Streamable
    HTTP with the bearer token; the point is then read back through Qdrant's REST API, the API
    keys are enforced, and the read-only key cannot write);
  * the find call's trace (its traceparent comes from the client in params._meta) is found by
    TraceQL search and by id in Tempo, with the embedding and Qdrant child spans;
  * its `tool call` log line is in Loki under service_name, matched by trace_id;
  * its metrics reach Prometheus through the OTLP receiver
    (mcp_server_operation_duration_seconds_count), and the collector's Qdrant scrape (up);
  * the alert rules are loaded and evaluate without error;
  * Grafana answers /api/health, keeps anonymous users out, lists the provisioned datasources
    (uids prometheus, tempo, loki), each of which passes Grafana's own health check, and the
    provisioned dashboards in their folder;
  * Grafana's trace-to-metrics queries for the find call's span return its series;
  * every PromQL query of the Qdrant dashboard returns data from the collector's Qdrant scrape,
    after the calls obs_support.UPSTREAM_QDRANT_CALLS lists (a failed REST and a failed gRPC
    call among them: Qdrant reports only the statuses it has served);
  * the server package's behavioural store suites (tests/server/test_store.py, test_lifecycle.py,
    test_listing.py) pass against the real Qdrant (QDRANT_TEST_URL, the engine "qdrant-server").

Telemetry is waited for with timeouts (the server's metric export interval is lowered to 2 s
through OTEL_METRIC_EXPORT_INTERVAL; the collector scrapes Qdrant every 15 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from stack_support import HERE, RESULTS_DIR, RUN_ID, record, run

from support import REPO, free_port

sys.path.insert(0, str(REPO / "tests" / "observability"))
from obs_support import (
    GRAFANA,
    UPSTREAM_QDRANT_CALLS,
    load_dashboards,
    prometheus_targets,
    promql_metric_names,
    traces_to_metrics_queries,
)

MODE = os.environ.get("STACK_IMAGES", "")
if MODE not in ("", "upstream"):
    pytest.fail(f"STACK_IMAGES={MODE!r} is not a mode: set STACK_IMAGES=upstream, or unset it", pytrace=False)

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        MODE != "upstream",
        reason="full stack with the real upstream images: runs only with STACK_IMAGES=upstream "
        "(needs Docker Hub; CI's upstream job sets it)",
    ),
]

COMPOSE_FILES = ("compose.yaml", str(HERE / "compose.upstream.yaml"))
SERVICES = ("qdrant", "mcp-server", "otel-collector", "prometheus", "tempo", "loki", "grafana")
NO_HEALTHCHECK = {"otel-collector"}  # FROM scratch: compose.yaml gates on service_started
PULL_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 1800
UP_TIMEOUT_S = 300
TELEMETRY_TIMEOUT_S = 180  # server -> collector -> Tempo / Loki / Prometheus
QUERY_TIMEOUT_S = 30  # once the Qdrant scrape is in, per dashboard query
METRIC_EXPORT_INTERVAL_MS = 2000
SERVICE_NAME = "qdrant-mcp"  # compose.yaml's OTEL_SERVICE_NAME default
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
VECTOR = "fast-all-minilm-l6-v2"  # the official server's vector name for MODEL
# The real Qdrant is plain HTTP on loopback, and qdrant-client warns when an API key goes over
# HTTP; pytest.ini turns every warning into an error, so the store suite run below ignores this one.
INSECURE_API_KEY_WARNING = "ignore:Api key is used with an insecure connection:UserWarning"

RULES_FILE = REPO / "otel" / "prometheus" / "rules" / "qdrant-mcp.rules.yaml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yaml"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T], timeout: float, interval: float = 2.0) -> T:
    """Retry `probe` until it returns without raising; its last AssertionError explains a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except (AssertionError, httpx.HTTPError, ValueError, KeyError) as exc:
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}: {exc}")
        time.sleep(interval)


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    name: str
    env: dict[str, str]
    env_file: Path
    secrets: Path
    ports: dict[str, int]
    collection: str
    backends: dict[str, str]

    def compose(self, *args: str, timeout: float = 300, check: bool = True):
        files = [arg for path in COMPOSE_FILES for arg in ("-f", path)]
        cmd = ["docker", "compose", "--env-file", str(self.env_file), *files, "-p", self.name, *args]
        return run(cmd, env=self.env, timeout=timeout, check=check)

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"

    def published(self, service: str, port: int) -> str:
        """Base URL of a port Docker published on loopback (compose.upstream.yaml)."""
        address = self.compose("port", service, str(port)).stdout.strip().splitlines()[0]
        return f"http://127.0.0.1:{int(address.rpartition(':')[2])}"


def _image_metadata() -> dict[str, str]:
    """IMAGE_VERSION, IMAGE_REVISION, IMAGE_CREATED, IMAGE_SOURCE from scripts/image-env."""
    line = run([str(REPO / "scripts" / "image-env")]).stdout.split(maxsplit=1)[1]
    return dict(item.split("=", 1) for item in line.split())


@pytest.fixture(scope="module")
def stack(engine: None, secrets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name = f"upstream-{RUN_ID}".replace(".", "-")
    prebuilt = os.environ.get("STACK_SERVER_IMAGE", "")
    image = prebuilt or f"qdrant-mcp-memory:upstream-{RUN_ID}"
    env_file = tmp_path_factory.mktemp("upstream") / "empty.env"
    env_file.write_text("")  # not the repository's .env: a developer's settings must not leak in
    ports = {port: free_port() for port in ("mcp", "grafana", "qdrant", "qdrant-grpc")}
    collection = f"upstream-{RUN_ID}".replace(".", "-")
    env = {
        **_image_metadata(),
        "MCP_IMAGE": image,
        "SECRETS_DIR": str(secrets_dir),
        "SECRETS_GID": os.environ["SECRETS_GID"],  # set by the secrets_dir fixture
        "BIND_ADDRESS": "127.0.0.1",
        "MCP_PUBLISH_PORT": str(ports["mcp"]),
        "GRAFANA_PUBLISH_PORT": str(ports["grafana"]),
        "QDRANT_HTTP_PUBLISH_PORT": str(ports["qdrant"]),
        "QDRANT_GRPC_PUBLISH_PORT": str(ports["qdrant-grpc"]),
        "COLLECTION_NAME": collection,
        "OTEL_METRIC_EXPORT_INTERVAL": str(METRIC_EXPORT_INTERVAL_MS),
        "BUILD_CA_FILE": "/dev/null",
    }
    stack = Stack(name, env, env_file, secrets_dir, ports, collection, {})
    try:
        start = time.monotonic()
        stack.compose("pull", "--quiet", "--ignore-buildable", timeout=PULL_TIMEOUT_S)
        record("upstream_pull_s", round(time.monotonic() - start, 1))
        if not prebuilt:
            start = time.monotonic()
            stack.compose("build", "--progress", "plain", "mcp-server", timeout=BUILD_TIMEOUT_S)
            record("upstream_build_s", round(time.monotonic() - start, 1))
        start = time.monotonic()
        up = stack.compose(
            "up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), "--no-build", "--pull", "never",
            timeout=UP_TIMEOUT_S + 120, check=False,
        )  # fmt: skip
        if up.returncode != 0:
            ps = stack.compose("ps", "--all", check=False)
            logs = stack.compose("logs", "--no-color", "--tail", "40", check=False, timeout=120)
            pytest.fail(
                f"`docker compose up --wait` failed ({up.returncode}):\n{up.stderr[-3000:]}\n"
                f"--- ps ---\n{ps.stdout}\n--- logs (tail) ---\n{logs.stdout[-12000:]}"
            )
        record("upstream_up_to_healthy_s", round(time.monotonic() - start, 1))
        stack.backends = {
            "prometheus": stack.published("prometheus", 9090),
            "tempo": stack.published("tempo", 3200),
            "loki": stack.published("loki", 3100),
        }
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{name}.log").write_text(logs.stdout + logs.stderr)
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=240)
        if not prebuilt and os.environ.get("STACK_KEEP_IMAGE") != "1":
            run(["docker", "image", "rm", "-f", image], check=False)


# --- one round of real traffic ------------------------------------------------------------------


@dataclass
class Traffic:
    trace_id: str
    started: float
    text: str
    tools: set[str]
    stored: Any
    found: Any


async def _mcp_round_trip(url: str, token: str, text: str, traceparent: str) -> tuple[set[str], Any, Any]:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    meta: Any = {"traceparent": traceparent}  # the find call continues this trace (SEP-414)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        stored = await client.call_tool("qdrant-store", {"information": text, "metadata": {"run": RUN_ID}})
        found = await client.call_tool("qdrant-find", {"query": "who writes down every ship?"}, meta=meta)
    return tools, stored, found


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Traffic:
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    text = f"The lighthouse keeper writes down every ship that passes (upstream run {RUN_ID})."
    started = time.time()
    tools, stored, found = asyncio.run(
        _mcp_round_trip(
            f"{stack.url('mcp')}/mcp", stack.secret("mcp_auth_token"), text, f"00-{trace_id}-{parent_span}-01"
        )
    )
    # The calls the Qdrant dashboard needs (obs_support.UPSTREAM_QDRANT_CALLS, where a static
    # test ties every asserted query to them): Qdrant reports only the endpoints and statuses it
    # has served, so the gRPC panels need a gRPC call and the failure panels a failed call.
    calls = UPSTREAM_QDRANT_CALLS
    refused = httpx.post(
        f"{stack.url('qdrant')}/collections/{stack.collection}/points/count", json={"exact": True}, timeout=10
    )
    assert refused.status_code == calls["REST count without a key"].status, refused.text
    assert _grpc_count(stack, stack.secret("qdrant_api_key")) == calls["gRPC count"].status
    assert _grpc_count(stack, None) == calls["gRPC count without a key"].status
    return Traffic(trace_id, started, text, tools, stored, found)


def _grpc_count(stack: Stack, api_key: str | None) -> int:
    """A Count over gRPC (the qdrant-client the server depends on); its gRPC status code."""
    import grpc
    from qdrant_client import QdrantClient

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Api key is used with an insecure connection", category=UserWarning)
        client = QdrantClient(
            host="127.0.0.1", port=stack.ports["qdrant"], grpc_port=stack.ports["qdrant-grpc"], prefer_grpc=True,
            https=False, api_key=api_key, check_compatibility=False, timeout=30,
        )  # fmt: skip
        try:
            client.count(stack.collection, exact=True)
        except grpc.RpcError as exc:
            return int(exc.code().value[0])
        finally:
            client.close()
    return 0


# --- services -----------------------------------------------------------------------------------


def _ps(stack: Stack) -> dict[str, dict[str, Any]]:
    out = stack.compose("ps", "--all", "--format", "json").stdout.strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line]
    return {row["Service"]: row for row in rows}


def test_every_service_runs_its_pinned_upstream_image(stack: Stack) -> None:
    config = json.loads(stack.compose("config", "--format", "json").stdout)["services"]
    assert set(SERVICES) == set(config), "compose.yaml's default services changed: update SERVICES"
    ps = _ps(stack)
    problems = []
    for service in SERVICES:
        row = ps.get(service)
        if row is None:
            problems.append(f"{service}: no container")
            continue
        if row["State"] != "running":
            problems.append(f"{service}: {row['State']} ({row.get('Status')})")
        if service not in NO_HEALTHCHECK and row.get("Health") != "healthy":
            problems.append(f"{service}: health {row.get('Health')!r}")
        if row["Image"] != config[service]["image"]:
            problems.append(f"{service}: runs {row['Image']}, compose.yaml pins {config[service]['image']}")
    assert not problems, "\n".join(problems)


# --- MCP through the real Qdrant ----------------------------------------------------------------


def test_store_and_find_through_the_real_qdrant(stack: Stack, traffic: Traffic) -> None:
    assert {"qdrant-store", "qdrant-find"} <= traffic.tools
    assert not traffic.stored.is_error, traffic.stored
    assert not traffic.found.is_error, traffic.found
    assert traffic.stored.structured_content["collection"] == stack.collection
    documents = [hit["document"] for hit in traffic.found.structured_content["hits"]]
    assert traffic.text in documents, documents
    # ...and the point is in the real Qdrant, behind its API key.
    qdrant, key = stack.url("qdrant"), stack.secret("qdrant_api_key")
    info = httpx.get(f"{qdrant}/collections/{stack.collection}", headers={"api-key": key}, timeout=10)
    assert info.status_code == 200, info.text
    assert info.json()["result"]["points_count"] >= 1
    point_id = traffic.stored.structured_content["id"]
    point = httpx.get(
        f"{qdrant}/collections/{stack.collection}/points/{point_id}", headers={"api-key": key}, timeout=10
    )
    assert point.status_code == 200, point.text
    assert point.json()["result"]["payload"]["document"] == traffic.text


def test_keys_and_tokens_are_enforced(stack: Stack, traffic: Traffic) -> None:
    qdrant = stack.url("qdrant")
    collection = f"{qdrant}/collections/{stack.collection}"
    assert httpx.get(collection, timeout=10).status_code == 401
    read_only = {"api-key": stack.secret("qdrant_read_only_api_key")}
    assert httpx.get(collection, headers=read_only, timeout=10).status_code == 200
    point = {"id": "00000000-0000-4000-8000-000000000001", "vector": {VECTOR: [0.1] * 384}, "payload": {}}
    write = httpx.put(f"{collection}/points", headers=read_only, timeout=10, json={"points": [point]})
    assert write.status_code == 403, (write.status_code, write.text)
    assert httpx.get(f"{qdrant}/readyz", timeout=10).status_code == 200  # health needs no key
    mcp = f"{stack.url('mcp')}/mcp"
    assert httpx.post(mcp, json={}, timeout=10).status_code == 401
    assert httpx.get(f"{stack.url('mcp')}/readyz", timeout=10).status_code == 200


# --- traces, logs, metrics ----------------------------------------------------------------------


def _spans(trace: Any) -> list[tuple[str, dict[str, Any]]]:
    """(span name, resource attributes) for every span of a Tempo trace-by-id response (v1 or v2)."""
    out: list[tuple[str, dict[str, Any]]] = []

    def attributes(resource: dict[str, Any]) -> dict[str, Any]:
        return {a["key"]: next(iter(a.get("value", {}).values()), None) for a in resource.get("attributes", [])}

    def walk(node: Any, resource: dict[str, Any]) -> None:
        if isinstance(node, dict):
            if "resource" in node and isinstance(node["resource"], dict):
                resource = attributes(node["resource"])
            for span in node.get("spans", []) if isinstance(node.get("spans"), list) else []:
                out.append((span.get("name", ""), resource))
            for key, value in node.items():
                if key != "spans":
                    walk(value, resource)
        elif isinstance(node, list):
            for item in node:
                walk(item, resource)

    walk(trace, {})
    return out


def test_the_tool_call_trace_is_in_tempo(stack: Stack, traffic: Traffic) -> None:
    tempo = stack.backends["tempo"]
    traceql = f'{{ resource.service.name = "{SERVICE_NAME}" && span.gen_ai.tool.name = "qdrant-find" }}'

    def searched() -> None:
        window = {"start": int(traffic.started) - 120, "end": int(time.time()) + 60}
        found: set[int] = set()
        errors = []
        for extra in (window, {}):  # with a window: blocks and live store; without: live store only
            response = httpx.get(
                f"{tempo}/api/search", params={"q": traceql, "limit": 100, "spss": 10, **extra}, timeout=15
            )
            if response.status_code != 200:
                errors.append(f"{sorted(extra)}: {response.status_code} {response.text[:300]}")
                continue
            # Tempo trims leading zeros from trace ids in search results: compare as numbers.
            found |= {int(t["traceID"], 16) for t in response.json().get("traces", [])}
        assert int(traffic.trace_id, 16) in found, f"trace {traffic.trace_id} not among {len(found)} found {errors}"

    wait_for(f"TraceQL search {traceql} to find trace {traffic.trace_id}", searched, TELEMETRY_TIMEOUT_S)

    expected = {"tools/call qdrant-find", f"embeddings {MODEL}", f"query_points {stack.collection}"}

    def by_id() -> list[tuple[str, dict[str, Any]]]:
        window = {"start": int(traffic.started) - 120, "end": int(time.time()) + 60}
        seen = []
        for extra in (window, {}):
            response = httpx.get(f"{tempo}/api/v2/traces/{traffic.trace_id}", params=extra, timeout=15)
            if response.status_code != 200:
                seen.append(f"{sorted(extra)}: {response.status_code} {response.text[:300]}")
                continue
            spans = _spans(response.json())
            names = {name for name, _ in spans}
            if expected <= names:
                return spans
            seen.append(f"{sorted(extra)}: spans {sorted(names)} lack {sorted(expected - names)}")
        raise AssertionError("; ".join(seen))

    spans = wait_for(f"trace {traffic.trace_id} by id", by_id, TELEMETRY_TIMEOUT_S)
    services = {resource.get("service.name") for _, resource in spans}
    assert services == {SERVICE_NAME}, services


def test_the_tool_call_logs_are_in_loki(stack: Stack, traffic: Traffic) -> None:
    loki = stack.backends["loki"]
    logql = f'{{service_name="{SERVICE_NAME}"}} | trace_id="{traffic.trace_id}"'

    def lines() -> list[tuple[dict[str, str], str]]:
        response = httpx.get(
            f"{loki}/loki/api/v1/query_range",
            params={
                "query": logql,
                "start": str(int((traffic.started - 120) * 1e9)),
                "end": str(int((time.time() + 60) * 1e9)),
                "limit": "100",
                "direction": "backward",
            },
            timeout=15,
        )
        assert response.status_code == 200, f"{response.status_code} {response.text[:500]}"
        body = response.json()
        assert body["status"] == "success", body
        found = [(stream["stream"], value[1]) for stream in body["data"]["result"] for value in stream["values"]]
        assert any(line == "tool call" for _, line in found), f"{logql} -> {found[:5]}"
        return found

    found = wait_for(f"Loki to return {logql}", lines, TELEMETRY_TIMEOUT_S)
    assert all(labels.get("service_name") == SERVICE_NAME for labels, _ in found), found[:3]


def _prometheus(stack: Stack, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.backends['prometheus']}/api/v1/query", params={"query": expr}, timeout=15)
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def test_the_tool_call_metrics_reach_prometheus_over_otlp(stack: Stack, traffic: Traffic) -> None:
    expr = 'sum by (job, gen_ai_tool_name) (mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call"})'

    def counted() -> dict[str, float]:
        series = _prometheus(stack, expr)
        calls = {s["metric"].get("gen_ai_tool_name", ""): float(s["value"][1]) for s in series}
        assert calls.get("qdrant-store", 0) >= 1 and calls.get("qdrant-find", 0) >= 1, f"{expr} -> {series}"
        jobs = {s["metric"].get("job", "") for s in series}
        assert all(re.fullmatch(r"(.+/)?qdrant-mcp", job) for job in jobs), jobs
        return calls

    wait_for(f"{expr} to count both calls", counted, TELEMETRY_TIMEOUT_S)


def test_trace_to_metrics_links_find_the_find_calls_series(stack: Stack, traffic: Traffic) -> None:
    """The queries Grafana's Tempo datasource builds for the find call's span (tracesToMetrics:
    its tags are resource attributes, as Tempo returns them) return that tool's series."""
    tempo, span = stack.backends["tempo"], "tools/call qdrant-find"

    def resource() -> dict[str, Any]:
        window = {"start": int(traffic.started) - 120, "end": int(time.time()) + 60}
        response = httpx.get(f"{tempo}/api/v2/traces/{traffic.trace_id}", params=window, timeout=15)
        assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
        found = [attributes for name, attributes in _spans(response.json()) if name == span]
        assert found, f"no {span} span in trace {traffic.trace_id}"
        return found[0]

    attributes = wait_for(f"the {span} span of trace {traffic.trace_id}", resource, TELEMETRY_TIMEOUT_S)
    tempo_ds = next(d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"] if d["uid"] == "tempo")
    queries = traces_to_metrics_queries(tempo_ds["jsonData"]["tracesToMetrics"], attributes, {})
    assert queries
    for name, expr in queries:

        def data(expr: str = expr, name: str = name) -> None:
            series = _prometheus(stack, expr)
            assert "qdrant-find" in {s["metric"].get("gen_ai_tool_name") for s in series}, f"{name}: {expr} -> {series}"

        wait_for(f"data from {expr}", data, TELEMETRY_TIMEOUT_S)


def test_the_collector_scrapes_qdrant(stack: Stack, traffic: Traffic) -> None:
    def up() -> None:
        series = _prometheus(stack, 'up{job="qdrant"}')
        assert series and all(float(s["value"][1]) == 1 for s in series), series

    wait_for('up{job="qdrant"} == 1', up, TELEMETRY_TIMEOUT_S)


def test_alert_rules_are_loaded_and_evaluate(stack: Stack) -> None:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    expected = {(g["name"], r["alert"]) for g in groups for r in g["rules"] if "alert" in r}

    def loaded() -> None:
        response = httpx.get(f"{stack.backends['prometheus']}/api/v1/rules", params={"type": "alert"}, timeout=15)
        data = response.json()["data"]
        rules = {(g["name"], r["name"]): r for g in data["groups"] for r in g["rules"]}
        assert set(rules) == expected, f"missing {expected - set(rules)}, unexpected {set(rules) - expected}"
        unhealthy = {name: (r["health"], r.get("lastError")) for name, r in rules.items() if r["health"] != "ok"}
        assert not unhealthy, unhealthy

    wait_for("every alert rule to be loaded and evaluated", loaded, 90)


# --- Grafana ------------------------------------------------------------------------------------


def _provisioned_dashboards() -> tuple[str, str, set[str]]:
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    uids = {d["uid"] for d in load_dashboards().values()}
    return provider["folder"], provider["folderUid"], uids


def test_grafana_health_datasources_and_dashboards(stack: Stack) -> None:
    grafana = stack.url("grafana")
    health = httpx.get(f"{grafana}/api/health", timeout=10)
    assert health.status_code == 200 and health.json().get("database") == "ok", health.text
    # No dev override: anonymous users get nothing.
    assert httpx.get(f"{grafana}/api/search", timeout=10).status_code == 401

    auth = ("admin", stack.secret("grafana_admin_password"))
    listed = httpx.get(f"{grafana}/api/datasources", auth=auth, timeout=10)
    assert listed.status_code == 200, listed.text
    by_uid = {ds["uid"]: ds for ds in listed.json()}
    provisioned = {ds["uid"]: ds for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    assert set(provisioned) == {"prometheus", "tempo", "loki"}
    assert set(provisioned) <= set(by_uid), sorted(by_uid)
    for uid, ds in provisioned.items():
        assert (by_uid[uid]["type"], by_uid[uid]["url"]) == (ds["type"], ds["url"])
        checked = httpx.get(f"{grafana}/api/datasources/uid/{uid}/health", auth=auth, timeout=30)
        assert checked.status_code == 200 and checked.json().get("status") == "OK", (uid, checked.text)

    folder_title, folder_uid, uids = _provisioned_dashboards()
    folder = httpx.get(f"{grafana}/api/folders/{folder_uid}", auth=auth, timeout=10)
    assert folder.status_code == 200 and folder.json()["title"] == folder_title, folder.text

    def dashboards() -> None:
        search = httpx.get(
            f"{grafana}/api/search", params={"type": "dash-db", "folderUIDs": folder_uid}, auth=auth, timeout=10
        )
        assert search.status_code == 200, search.text
        assert {d["uid"] for d in search.json()} == uids, search.json()

    wait_for(f"dashboards {sorted(uids)} in folder {folder_uid}", dashboards, 60)


# --- the Qdrant dashboard -----------------------------------------------------------------------

QDRANT_DASHBOARD = load_dashboards()["qdrant.json"]
QDRANT_QUERIES = prometheus_targets(QDRANT_DASHBOARD)  # $__rate_interval -> 1m (obs_support)
QDRANT_DASHBOARD_METRICS = sorted(set().union(*(promql_metric_names(expr) for _, expr, _ in QDRANT_QUERIES)))


def _metric_params() -> list[Any]:
    return list(QDRANT_DASHBOARD_METRICS)


def _query_params() -> list[Any]:
    return [pytest.param(expr, id=f"{title}-{target.get('refId', '')}") for title, expr, target in QDRANT_QUERIES]


@pytest.fixture(scope="module")
def qdrant_scraped(stack: Stack, traffic: Traffic) -> None:
    """The collector has scraped Qdrant at least twice since the REST and gRPC calls, so that
    rate() over the dashboard's 1m window has two samples."""

    def scraped() -> None:
        for metric in ("rest_responses_total", "grpc_responses_total", "collection_points"):
            samples = _prometheus(stack, f"max(count_over_time({metric}[1m]))")
            assert samples and float(samples[0]["value"][1]) >= 2, f"{metric}: {samples}"

    wait_for("two scrapes of Qdrant's REST, gRPC and collection metrics", scraped, TELEMETRY_TIMEOUT_S)


@pytest.mark.parametrize("metric", _metric_params())
def test_qdrant_dashboard_metric_exists(stack: Stack, qdrant_scraped: None, metric: str) -> None:
    def present() -> None:
        assert _prometheus(stack, f"count({metric})"), f"no series {metric}"

    wait_for(f"series {metric}", present, QUERY_TIMEOUT_S)


@pytest.mark.parametrize("expr", _query_params())
def test_qdrant_dashboard_query_returns_data(stack: Stack, qdrant_scraped: None, expr: str) -> None:
    def data() -> None:
        assert _prometheus(stack, expr), f"no data: {expr}"

    wait_for(f"data from {expr}", data, QUERY_TIMEOUT_S)


# --- the server package's store suite against the real Qdrant -----------------------------------

STORE_SUITES = ("tests/server/test_store.py", "tests/server/test_lifecycle.py", "tests/server/test_listing.py")


def test_store_suite_against_the_real_qdrant(stack: Stack) -> None:
    """The store's behavioural suites (STORE_SUITES) with QDRANT_TEST_URL: their third engine, "qdrant-server"."""
    env = {
        "QDRANT_TEST_URL": stack.url("qdrant"),
        "QDRANT_TEST_API_KEY": stack.secret("qdrant_api_key"),
    }
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", INSECURE_API_KEY_WARNING,
        "-k", "qdrant-server", *STORE_SUITES,
    ]  # fmt: skip
    start = time.monotonic()
    proc = run(cmd, env=env, timeout=1500, check=False)
    record("upstream_store_suite_s", round(time.monotonic() - start, 1))
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) > 0, proc.stdout[-2000:]
