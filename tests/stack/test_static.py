"""Static checks of the container definitions: hadolint, `docker compose config`, policies."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from stack_support import REPO, run

from support import compose_layers

pytestmark = pytest.mark.stack

PROFILES = ["--profile", "demo", "--profile", "inspector"]


def test_hadolint_clean(hadolint: str) -> None:
    proc = run([hadolint, "--no-color", "Dockerfile"], check=False)
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_dockerfile_has_no_syntax_directive() -> None:
    # A `# syntax=` line makes BuildKit pull a frontend image; no registry is reachable.
    first = (REPO / "Dockerfile").read_text().splitlines()[:5]
    assert not any(re.match(r"#\s*syntax\s*=", line) for line in first)


def _config(env_file: Path, secrets_dir: Path, *files: str, profiles: tuple[str, ...] = tuple(PROFILES)) -> dict:
    args = ["docker", "compose", "--env-file", str(env_file)]
    for f in files:
        args += ["-f", f]
    proc = run([*args, *profiles, "config", "--format", "json"], env={"SECRETS_DIR": str(secrets_dir)})
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("env") / ".env"
    shutil.copy(REPO / ".env.example", target)
    return target


@pytest.mark.parametrize(
    "files",
    [
        ("compose.yaml",),
        ("compose.core.yaml",),
        ("compose.yaml", "compose.override.yaml"),
        ("compose.yaml", "compose.demo-readonly.yaml"),
    ],
    ids=["base", "lean", "dev-override", "demo-readonly"],
)
def test_compose_config_valid(engine: None, env_file: Path, secrets_dir: Path, files: tuple[str, ...]) -> None:
    args = ["docker", "compose", "--env-file", str(env_file)]
    for f in files:
        args += ["-f", f]
    run([*args, *PROFILES, "config", "--quiet"], env={"SECRETS_DIR": str(secrets_dir)})


def test_compose_config_default_files(engine: None, env_file: Path, secrets_dir: Path) -> None:
    """Plain `docker compose config` (auto-loads the override) also resolves."""
    run(
        ["docker", "compose", "--env-file", str(env_file), *PROFILES, "config", "--quiet"],
        env={"SECRETS_DIR": str(secrets_dir)},
    )


def test_compose_policies(engine: None, env_file: Path, secrets_dir: Path) -> None:
    cfg = _config(env_file, secrets_dir, "compose.yaml")
    services = cfg["services"]
    expected = {"qdrant", "mcp-server", "otel-collector", "prometheus", "tempo", "loki", "grafana", "demo", "inspector"}
    assert expected <= set(services), f"missing services: {expected - set(services)}"
    problems: list[str] = []
    for name, svc in services.items():
        image = svc.get("image", "")
        if name not in ("mcp-server", "demo"):
            tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
            if not tag or tag == "latest":
                problems.append(f"{name}: image {image!r} is not pinned")
        if svc.get("read_only") is not True:
            problems.append(f"{name}: read_only is not true")
        if svc.get("cap_drop") != ["ALL"]:
            problems.append(f"{name}: cap_drop is not [ALL]")
        if "no-new-privileges:true" not in svc.get("security_opt", []):
            problems.append(f"{name}: no no-new-privileges")
        if not svc.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory"):
            problems.append(f"{name}: no memory limit")
        if svc.get("logging", {}).get("options", {}).get("max-size") is None:
            problems.append(f"{name}: no log rotation")
        for port in svc.get("ports", []):
            if port.get("host_ip") != "127.0.0.1":
                problems.append(f"{name}: port {port.get('target')} published on {port.get('host_ip')!r}")
    assert not problems, "\n".join(problems)

    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"qdrant", "mcp-server", "grafana", "inspector"}, published
    dep = services["mcp-server"]["depends_on"]
    assert dep["qdrant"]["condition"] == "service_healthy" and dep["qdrant"].get("restart") is True
    assert services["mcp-server"]["environment"]["OTEL_SDK_DISABLED"] == "false"  # exports to the collector
    for backend in ("prometheus", "tempo", "loki"):
        assert services["grafana"]["depends_on"][backend]["condition"] == "service_healthy"
        assert services[backend]["healthcheck"]["test"][0] == "CMD"
    assert services["demo"]["profiles"] == ["demo"] and services["inspector"]["profiles"] == ["inspector"]
    assert set(cfg["volumes"]) >= {"qdrant-storage", "prometheus-data", "tempo-data", "loki-data", "grafana-data"}
    # Secrets come from files, never from environment values.
    for name, secret in cfg["secrets"].items():
        assert "file" in secret, f"secret {name} is not file-based"
    env = services["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env


def test_override_does_not_weaken_secrets(engine: None, env_file: Path, secrets_dir: Path) -> None:
    base = _config(env_file, secrets_dir, "compose.yaml")
    dev = _config(env_file, secrets_dir, "compose.yaml", "compose.override.yaml")
    assert dev["secrets"] == base["secrets"]
    for name, svc in base["services"].items():
        assert dev["services"][name].get("secrets") == svc.get("secrets"), name
        for key in ("read_only", "cap_drop", "security_opt"):
            assert dev["services"][name].get(key) == svc.get(key), f"{name}.{key} changed by the override"
        for port in dev["services"][name].get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: override publishes beyond loopback"
    dev_env = dev["services"]["mcp-server"]["environment"]
    assert dev_env["MCP_AUTH_TOKEN_FILE"] == base["services"]["mcp-server"]["environment"]["MCP_AUTH_TOKEN_FILE"]
    assert dev["services"]["mcp-server"]["develop"]["watch"], "no develop.watch for mcp-server"


def test_readonly_demo_policies(engine: None, env_file: Path, secrets_dir: Path) -> None:
    """compose.demo-readonly.yaml (docs/demo.md): read tools only, the token required, Qdrant's
    read-only key, Qdrant unpublished, the seeding job hardened and run to completion first."""
    services = _config(env_file, secrets_dir, "compose.yaml", "compose.demo-readonly.yaml")["services"]
    for name in ("mcp-server", "demo-server"):  # demo-server: the demo profile's, read-only too
        server = services[name]
        env = server["environment"]
        assert env["QDRANT_READ_ONLY"] == "true", name
        assert env["MCP_AUTH_TOKEN_FILE"] == "/run/secrets/mcp_auth_token", name
        assert env["MCP_ALLOW_UNAUTHENTICATED"] == "false", name
        assert env["QDRANT_API_KEY_FILE"] == "/run/secrets/qdrant_read_only_api_key", name
        assert env["COLLECTION_NAME"] == "demo-memories", name  # the demo's collection, never the user's
        assert {s["source"] for s in server["secrets"]} == {"qdrant_read_only_api_key", "mcp_auth_token"}, name
        assert server["depends_on"]["demo-seed"]["condition"] == "service_completed_successfully", name
    assert not services["qdrant"].get("ports")
    seed = services["demo-seed"]
    assert seed["read_only"] is True and seed["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in seed["security_opt"]
    assert seed["deploy"]["resources"]["limits"]["memory"] and seed["logging"]["options"]["max-size"]
    assert seed["environment"]["DEMO_MCP_COMMAND"].endswith("--transport stdio") and not seed.get("ports")
    assert seed.get("restart", "no") == "no"
    assert seed["environment"]["COLLECTION_NAME"] == "demo-memories"


def test_the_demo_talks_to_a_server_of_its_own(engine: None, env_file: Path, secrets_dir: Path) -> None:
    """The demo's samples and notes go to DEMO_COLLECTION through demo-server (mcp-server hides
    collection_name, so a client of it cannot choose); demo-server is mcp-server otherwise, unpublished."""
    services = _config(env_file, secrets_dir, "compose.yaml")["services"]
    server, demo_server = services["mcp-server"], services["demo-server"]
    assert services["demo"]["environment"]["DEMO_MCP_URL"] == "http://demo-server:8000/mcp"
    assert services["demo"]["depends_on"] == {"demo-server": {"condition": "service_healthy", "required": True}}
    assert server["environment"]["COLLECTION_NAME"] == "memories"
    changed = {"COLLECTION_NAME": "demo-memories", "MCP_ALLOWED_HOSTS": "demo-server:*"}
    assert demo_server["environment"] == {**server["environment"], **changed}
    assert demo_server["profiles"] == ["demo"] and not demo_server.get("ports") and not demo_server.get("build")
    for key in ("image", "secrets", "group_add", "read_only", "cap_drop", "security_opt", "depends_on"):
        assert demo_server.get(key) == server.get(key), key


def test_auth_profile_policies(engine: None, env_file: Path, secrets_dir: Path) -> None:
    """compose.auth.yaml (profile `auth`): Keycloak provisioned from keycloak/realm-mcp.json, the
    server in OAuth mode trusting it, an Inspector; hardened like every service, one namespace
    whose URLs (issuer, resource, the Inspector's origin) agree with the realm and the ports."""
    cfg = _config(env_file, secrets_dir, "compose.yaml", profiles=("--profile", "auth"))
    services = cfg["services"]
    auth = {"keycloak", "mcp-server-oauth", "inspector-oauth"}
    assert auth <= set(services) and all(services[name]["profiles"] == ["auth"] for name in auth)
    for name in auth:
        svc = services[name]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["deploy"]["resources"]["limits"]["memory"] and svc["logging"]["options"]["max-size"], name
    keycloak, server, inspector = (services[name] for name in ("keycloak", "mcp-server-oauth", "inspector-oauth"))
    assert keycloak["image"] == "quay.io/keycloak/keycloak:26.8.2"
    assert server["network_mode"] == inspector["network_mode"] == "service:keycloak"
    assert not server.get("ports") and not inspector.get("ports")
    ports = {(p["host_ip"], p["published"], p["target"]) for p in keycloak["ports"]}
    assert ports == {("127.0.0.1", "8180", 8180), ("127.0.0.1", "8001", 8001), ("127.0.0.1", "6284", 6274)}
    kc, env = keycloak["environment"], server["environment"]
    assert env["MCP_AUTH_MODE"] == "oauth" and env["MCP_AUTH_TOKEN_FILE"] == "" and env["MCP_PORT"] == "8001"
    assert env["MCP_OAUTH_ISSUER"] == f"{kc['KC_HOSTNAME']}/realms/mcp" == "http://localhost:8180/realms/mcp"
    assert env["MCP_PUBLIC_URL"] == kc["MCP_OAUTH_PUBLIC_URL"] == "http://localhost:8001/mcp"
    assert [s["source"] for s in server["secrets"]] == ["qdrant_api_key"]
    assert server["depends_on"]["keycloak"]["condition"] == "service_healthy"
    assert inspector["environment"]["ALLOWED_ORIGINS"].split(",")[0] == kc["MCP_INSPECTOR_ORIGIN"]
    assert [v["source"] for v in inspector["volumes"]] == ["inspector-oauth-data"]  # not the other Inspector's
    assert keycloak["command"] == ["start-dev", "--import-realm"]
    [realm_mount] = keycloak["volumes"]
    assert realm_mount["read_only"] and realm_mount["target"] == "/opt/keycloak/data/import/realm-mcp.json"
    for name in ("keycloak_admin_password", "keycloak_demo_password", "keycloak_automation_secret"):
        assert "file" in cfg["secrets"][name] and name in " ".join(keycloak["entrypoint"])

    realm = json.loads((REPO / "keycloak" / "realm-mcp.json").read_text())
    scopes = {scope["name"]: scope for scope in realm["clientScopes"]}
    for name in ("memory:read", "memory:write"):  # the server's default scope names
        [mapper] = scopes[name]["protocolMappers"]
        assert mapper["protocolMapper"] == "oidc-audience-mapper"
        assert mapper["config"]["included.custom.audience"] == "${MCP_OAUTH_PUBLIC_URL}"
        assert scopes[name]["attributes"]["include.in.token.scope"] == "true"
    clients = {client["clientId"]: client for client in realm["clients"]}
    app = clients["mcp-inspector"]
    assert app["publicClient"] and app["attributes"]["pkce.code.challenge.method"] == "S256"
    assert "${MCP_INSPECTOR_ORIGIN}/oauth/callback" in app["redirectUris"]
    assert all(uri.startswith(("${MCP_INSPECTOR_ORIGIN}/", "http://127.0.0.1:")) for uri in app["redirectUris"])
    assert set(clients["mcp-reader"]["defaultClientScopes"]) == {"basic", "memory:read"}
    # Secrets reach the realm only as placeholders filled from secrets/ at import.
    assert {c.get("secret") for c in clients.values() if not c["publicClient"]} == {
        "${MCP_AUTOMATION_SECRET}",
        "${MCP_READER_SECRET}",
    }
    assert [c["value"] for user in realm["users"] for c in user.get("credentials", [])] == ["${MCP_DEMO_PASSWORD}"]


def test_lean_layer_is_qdrant_and_the_server_without_telemetry(engine: None, env_file: Path, secrets_dir: Path) -> None:
    """`docker compose -f compose.core.yaml up`: Qdrant + the server (and the opt-in profiles),
    nothing exporting to a collector that is not there; OTEL_SDK_DISABLED, when set, wins."""
    lean = _config(env_file, secrets_dir, "compose.core.yaml")
    assert set(lean["services"]) == {"qdrant", "mcp-server", "demo-server", "demo", "inspector"}
    assert lean["services"]["mcp-server"]["environment"]["OTEL_SDK_DISABLED"] == "true"
    assert set(lean["secrets"]) == {"qdrant_api_key", "qdrant_read_only_api_key", "mcp_auth_token", "build_ca"}
    forced = env_file.with_name("forced.env")
    forced.write_text(env_file.read_text() + "OTEL_SDK_DISABLED=true\n")
    full = _config(forced, secrets_dir, "compose.yaml")
    assert full["services"]["mcp-server"]["environment"]["OTEL_SDK_DISABLED"] == "true"


@pytest.mark.parametrize("files", [(), ("-f", "compose.core.yaml")], ids=["full", "lean"])
def test_fresh_clone_without_secrets_fails_in_one_line_naming_scripts_up(engine: None, files: tuple[str, ...]) -> None:
    """Plain `docker compose up` before scripts/up: no .env, no secrets. One line, the command to run."""
    env = {k: v for k, v in os.environ.items() if k not in ("SECRETS_DIR", "COMPOSE_FILE")}
    proc = subprocess.run(
        ["docker", "compose", "--env-file", "/dev/null", *files, "up", "--no-start", "--pull", "never"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "run scripts/up" in lines[0], proc.stderr


def test_env_example_covers_compose_variables() -> None:
    """Every ${VAR} the compose files read is documented in .env.example (set, or commented out
    with its meaning), or, for the layering switch, in otel/stack.env."""
    files = [
        "compose.yaml",
        "compose.core.yaml",
        "compose.observability.yaml",
        "compose.auth.yaml",
        "compose.demo-readonly.yaml",
    ]
    text = "".join((REPO / name).read_text() for name in files)
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    documented = set(re.findall(r"^(?:# )?([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    documented |= set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (REPO / "otel" / "stack.env").read_text(), re.M))
    missing = sorted(used - documented)
    assert not missing, f".env.example lacks: {missing}"


def test_dockerignore_keeps_secrets_and_junk_out() -> None:
    lines = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert "*" in lines, ".dockerignore should be an allow-list"
    for needed in ("**/secrets/", "**/.env", "**/.venv/", "**/node_modules/", "**/__pycache__/"):
        assert needed in lines, f".dockerignore lacks {needed}"
    # The tests are in the build context for the `test` stage only: no other stage copies them.
    stages = (REPO / "Dockerfile").read_text().split("\nFROM ")
    copying_tests = [stage.split()[2] for stage in stages[1:] if "COPY tests" in stage]
    assert copying_tests == ["test"], copying_tests


def test_scripts_up_links_the_dashboards_that_exist() -> None:
    """The summary's Grafana links (/d/<uid>) name provisioned dashboards."""
    linked = set(re.findall(r"/d/([\w-]+)", (REPO / "scripts" / "up").read_text()))
    uids = {json.loads(p.read_text())["uid"] for p in (REPO / "grafana" / "dashboards").glob("*.json")}
    assert linked and linked <= uids, f"scripts/up links {sorted(linked)}, dashboards are {sorted(uids)}"


def test_the_standins_stand_in_for_the_pinned_images() -> None:
    """Each stand-in image is tagged qdrant-mcp-standin/<the image compose.yaml pins>, in the files
    that build them and in the files that swap them in: a new pin needs its stand-in (and its
    entry in tests/stack/README.md) checked again."""
    # The profile `auth` runs only with the real images (tests/stack/test_auth_stack.py, CI's
    # upstream job): nothing here stands in for Keycloak.
    pinned = {
        name: service.get("image", "")
        for name, service in compose_layers()["services"].items()
        if "auth" not in service.get("profiles", [])
    }
    built = yaml.safe_load((REPO / "tests" / "stack" / "standins" / "compose.yaml").read_text())["services"]
    swapped: dict[str, str] = {}
    for layer in ("core", "observability"):
        swapped |= {
            name: service["image"]
            for name, service in yaml.safe_load(
                (REPO / "tests" / "stack" / f"compose.standins.{layer}.yaml").read_text()
            )["services"].items()
        }
    upstream = {name for name, image in pinned.items() if image and not image.startswith("${MCP_IMAGE")}
    assert set(built) == set(swapped) == upstream
    readme = (REPO / "tests" / "stack" / "README.md").read_text()
    for name in upstream:
        assert built[name]["image"] == swapped[name] == f"qdrant-mcp-standin/{pinned[name]}", name
        assert f"`{pinned[name]}`" in readme, f"tests/stack/README.md does not describe {pinned[name]}"


# Settings the stack's server does not take from .env, and why; every other setting it reads must
# reach the container (a setting added to the server but not to compose.core.yaml is unusable there).
NOT_FROM_ENV_FILE = {
    "QDRANT_URL": "the stack's qdrant service",
    "QDRANT_API_KEY": "the qdrant_api_key secret (QDRANT_API_KEY_FILE)",
    "QDRANT_API_KEY_FILE": "the qdrant_api_key secret",
    "QDRANT_LOCAL_PATH": "the embedded engine's; the stack's server uses the qdrant service",
    "QDRANT_EMBEDDED_FSYNC": "the embedded engine's",
    "QDRANT_EMBEDDED_FSYNC_INTERVAL_MS": "the embedded engine's",
    "FASTEMBED_CACHE_PATH": "the model baked into the image",
    "EMBEDDING_QUANTIZED": "the image has neither the quantize extra nor a writable model cache",
    "MCP_TRANSPORT": "fixed by the container",
    "MCP_HOST": "fixed by the container",
    "MCP_PORT": "fixed by the container",
    "MCP_AUTH_TOKEN": "the mcp_auth_token secret (MCP_AUTH_TOKEN_FILE)",
    "MCP_AUTH_MODE": "the auth profile's server (compose.auth.yaml)",
    "MCP_PUBLIC_URL": "the auth profile's server",
    "MCP_TENANT_CLAIM": "the auth profile's server",
    "MCP_OAUTH_ISSUER": "the auth profile's server",
    "MCP_OAUTH_AUDIENCE": "the auth profile's realm",
    "MCP_OAUTH_JWKS_URL": "the auth profile's realm",
    "MCP_OAUTH_READ_SCOPE": "the auth profile's realm",
    "MCP_OAUTH_WRITE_SCOPE": "the auth profile's realm",
    "MCP_OAUTH_CLIENT_ID": "the auth profile's realm",
    "MCP_OAUTH_CLIENT_SECRET": "the auth profile's realm",
    "MCP_OAUTH_CLIENT_SECRET_FILE": "the auth profile's realm",
    "MCP_CALLER_HASH_KEY": "the auth profile's server",
    "MCP_CALLER_HASH_KEY_FILE": "the auth profile's server",
}


def _setting_names() -> set[str]:
    from qdrant_mcp_memory.settings import Settings

    names = set()
    for field in Settings.model_fields.values():
        choices = getattr(field.validation_alias, "choices", [])
        names.add(str(choices[0]).upper())
    return names


def test_every_setting_of_the_server_reaches_the_stacks_container() -> None:
    environment = compose_layers()["services"]["mcp-server"]["environment"]
    settings = _setting_names()
    assert {"QDRANT_VECTOR_NAME", "EMBEDDING_URL", "MCP_BODY_TIMEOUT"} <= settings  # the names are read right
    missing = sorted(settings - set(environment) - set(NOT_FROM_ENV_FILE))
    assert not missing, f"compose.core.yaml does not pass {missing} to mcp-server"
    assert not set(NOT_FROM_ENV_FILE) - settings, "NOT_FROM_ENV_FILE names a setting the server no longer has"


def test_layout_settings_reach_the_container_only_when_set_since_their_empty_value_means_something(
    engine: None, env_file: Path, secrets_dir: Path
) -> None:
    from qdrant_mcp_memory.settings.values import EMPTY_MEANS_SOMETHING

    layout = ("QDRANT_VECTOR_NAME", "QDRANT_DOCUMENT_KEY", "QDRANT_METADATA_KEY")
    assert set(EMPTY_MEANS_SOMETHING) <= set(layout)
    unset = _config(env_file, secrets_dir, "compose.core.yaml")["services"]["mcp-server"]["environment"]
    assert all(unset.get(name) is None for name in layout), {name: unset.get(name) for name in layout}
    langchain = env_file.with_name("langchain.env")
    langchain.write_text(
        env_file.read_text() + "QDRANT_VECTOR_NAME=\nQDRANT_DOCUMENT_KEY=page_content\nQDRANT_METADATA_KEY=\n"
    )
    for files in (("compose.core.yaml",), ("compose.yaml",)):
        environment = _config(langchain, secrets_dir, *files)["services"]["mcp-server"]["environment"]
        assert [environment[name] for name in layout] == ["", "page_content", ""]
    provider = env_file.with_name("provider.env")
    provider.write_text(
        env_file.read_text()
        + "EMBEDDING_PROVIDER=openai\nEMBEDDING_URL=http://embedder:7997\nEMBEDDING_DIMENSIONS=384\n"
    )
    environment = _config(provider, secrets_dir, "compose.core.yaml")["services"]["mcp-server"]["environment"]
    assert (environment["EMBEDDING_PROVIDER"], environment["EMBEDDING_URL"], environment["EMBEDDING_DIMENSIONS"]) == (
        "openai",
        "http://embedder:7997",
        "384",
    )
