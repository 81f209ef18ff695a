"""Facts the docs state that come from code, compared with the code: versions, names, defaults,
counts and figures (the client snippets have tests/docs/test_snippets.py)."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib

import pytest
import yaml

from support import REPO, compose_layers

README = (REPO / "README.md").read_text()
DEPLOYMENT = (REPO / "docs" / "deployment.md").read_text()
DOCS = [REPO / "README.md", REPO / "server" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
VERSION = tomllib.loads((REPO / "server" / "pyproject.toml").read_text())["project"]["version"]


def overlay(name: str) -> dict:
    return yaml.safe_load((REPO / "deploy" / "kustomize" / "overlays" / name / "kustomization.yaml").read_text())


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_the_kubernetes_overlays_pin_the_version_of_the_package(name: str) -> None:
    tags = {image["name"]: str(image["newTag"]) for image in overlay(name)["images"]}
    assert tags == {"ghcr.io/OWNER/qdrant-mcp-memory": VERSION}, f"overlays/{name}: {tags}, version {VERSION}"


def test_the_package_readme_names_the_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from qdrant_mcp_memory.settings import default_model_cache

    package_readme = (REPO / "server" / "README.md").read_text()
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    in_home = str(default_model_cache()).replace("/home/someone", "~", 1)
    assert f"`{in_home}`" in package_readme, in_home
    monkeypatch.setenv("XDG_CACHE_HOME", "$XDG_CACHE_HOME")
    assert f"`{default_model_cache()}`" in package_readme, default_model_cache()
    assert "temporary directory" not in package_readme


def test_the_readme_counts_the_warnings_pytest_ini_ignores() -> None:
    ini = (REPO / "pytest.ini").read_text()
    ignores = [line for line in ini.splitlines() if line.strip().startswith("ignore:")]
    said = re.search(r"Every warning fails the run, except\s+the (\d+) listed there", README)
    assert said and int(said[1]) == len(ignores), (said and said[0], len(ignores))


def host_urls_in_the_services_table() -> dict[str, str]:
    table = README.split("| Service | Image (pinned) | URL on the host | Health check |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.strip().splitlines()[1:]]
    return {re.sub(r"[`]|\s*\(.*", "", row[0]).strip(): row[2] for row in rows}


def test_host_urls_only_for_published_services() -> None:
    services = compose_layers()["services"]
    urls = host_urls_in_the_services_table()
    assert set(urls) == set(services), set(urls) ^ set(services)
    for name, url in urls.items():
        published = bool(services[name].get("ports"))
        assert ("http://127.0.0.1:" in url) == published, f"{name}: {url!r}, ports in compose: {published}"


def test_prometheus_pages_are_named_with_the_way_in() -> None:
    """Prometheus publishes no host port, so a page of it is named only with `docker compose exec`."""
    assert not compose_layers()["services"]["prometheus"].get("ports")
    for line in README.splitlines():
        if re.search(r"(/alerts|/graph|/targets|:9090)\b", line):
            assert "docker compose exec prometheus" in line, line


def test_the_grafana_volume_is_named_as_docker_lists_it() -> None:
    layers = compose_layers()
    project = re.fullmatch(
        r"\$\{COMPOSE_PROJECT_NAME:-([\w-]+)\}", yaml.safe_load((REPO / "compose.yaml").read_text())["name"]
    )
    assert project
    (volume,) = [v.split(":")[0] for v in layers["services"]["grafana"]["volumes"] if v.endswith(":/var/lib/grafana")]
    assert volume in layers["volumes"]
    assert f"`{project[1]}_{volume}`" in README
    assert not re.search(rf"(?<![\w_]){volume}` volume", README), "the bare compose key is not the volume's name"


def test_root_means_root_or_passwordless_sudo() -> None:
    """The scripts never prompt (sudo -n: they run unattended), so the docs say passwordless."""
    common = (REPO / "scripts" / "lib" / "common.sh").read_text()
    assert "sudo -n" in common
    for path in [*DOCS, *sorted((REPO / "scripts").glob("*"))]:
        if path.is_file():
            text = path.read_text()
            bare = re.findall(r"root,? \(?or sudo\b", text)
            assert not bare, f"{path.relative_to(REPO)}: {bare}: say 'root or passwordless sudo'"


def performance_row(label: str) -> list[str]:
    (row,) = [line for line in README.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in row.split("|")[1:-1]]


def test_the_deployment_guide_quotes_the_readme_benchmark() -> None:
    finds = performance_row("find throughput @ 8 clients")[2].removesuffix(" /s")
    cpu_per_find = performance_row("server CPU per find / per store @ 8 clients")[2].split(" / ")[0]
    assert f"{finds} finds/s at 8 clients" in DEPLOYMENT, finds
    assert f"{cpu_per_find} ms of server CPU per find" in DEPLOYMENT, cpu_per_find


def drain_grace() -> float:
    tree = ast.parse((REPO / "server" / "src" / "qdrant_mcp_memory" / "serve.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DRAIN_GRACE_S":
            return float(ast.literal_eval(node.value))
    raise AssertionError("serve.py has no DRAIN_GRACE_S")


def test_the_deployment_grace_period_covers_the_drain() -> None:
    text = (REPO / "deploy" / "kustomize" / "base" / "deployment.yaml").read_text()
    said = re.search(r"drain of in-flight calls \(<= (\d+) s\)", text)
    assert said and float(said[1]) == drain_grace(), (said and said[0], drain_grace())
    spec = yaml.safe_load(text)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain_grace()


def test_the_sessions_alert_says_what_the_server_does_at_the_cap() -> None:
    """At MCP_MAX_SESSIONS the least recently used idle session is ended (settings/model.py, the README's
    settings table); the alert must not promise that new sessions are refused."""
    rules = yaml.safe_load((REPO / "otel" / "prometheus" / "rules" / "qdrant-mcp.rules.yaml").read_text())
    (alert,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "McpSessionsNearLimit"]
    settings = (REPO / "server" / "src" / "qdrant_mcp_memory" / "settings" / "model.py").read_text()
    assert "the least recently used idle one makes room at the cap" in settings
    assert "at the cap the least recently used idle one is ended" in README
    description = " ".join(alert["annotations"]["description"].split())
    assert "at the cap the least recently used idle session is ended" in description, description
    assert "cannot be opened" not in description


def test_one_spelling_of_the_owner_placeholder() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    others = []
    for name in tracked.splitlines():
        path = REPO / name
        if path.suffix in {".md", ".yaml", ".yml", ".json", ".toml"} and path.is_file():
            others += [f"{name}: {m}" for m in re.findall(r"your-org|<owner>|YOUR_ORG|<org>", path.read_text())]
    assert not others, "the image owner is written OWNER everywhere:\n" + "\n".join(others)


def test_the_compose_minimum_in_the_docs_is_the_scripts() -> None:
    common = (REPO / "scripts" / "lib" / "common.sh").read_text()
    minimum = re.search(r"^COMPOSE_MIN=([\d.]+)$", common, re.M)
    assert minimum
    assert f"is older than {minimum[1]}" in README
    assert f"Needs Docker Compose {minimum[1]} or later" in (REPO / "scripts" / "up").read_text()
    assert f"names {minimum[1]} or later" in (REPO / "scripts" / "docker-engine").read_text()


def test_the_local_default_collection_is_the_stack_default() -> None:
    stack = compose_layers()["services"]["mcp-server"]["environment"]["COLLECTION_NAME"]
    local = re.search(r"^DEFAULT_COLLECTION=(\S+)$", (REPO / "scripts" / "up").read_text(), re.M)
    assert local and stack == f"${{COLLECTION_NAME:-{local[1]}}}", (stack, local and local[1])
    assert f"collection `{local[1]}` unless" in README


def test_every_setting_is_in_the_readme_table() -> None:
    """Each variable the server's settings read (the auth group's too) has a row in README's Settings."""
    from qdrant_mcp_memory.settings import Settings

    table = README.split("### Settings", 1)[1].split("\n### ", 1)[0]
    names = {alias for field in Settings.model_fields.values() for alias in field.validation_alias.choices}
    assert {"MCP_AUTH_MODE", "MCP_OAUTH_ISSUER", "MCP_PUBLIC_URL", "MCP_CALLER_HASH_KEY_FILE"} <= names
    assert not sorted(name for name in names if f"`{name}`" not in table)
