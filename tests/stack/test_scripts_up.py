"""The stack as a user runs it: an unprivileged account in the docker group (tests/host_user.py),
its own copy of the repository made under umask 027 (no "other" bits on any file) and the
embedding model in its own home, the machine's Compose plugin (scripts/docker-engine installs it
for every user). As that user: scripts/up for the full stack,
then the Inspector on another port, the demo, the read-only demo and the lean layer, each
checked healthy and serving through its published ports with a real MCP client.

No registry is reachable here: the pinned upstream images are replaced by the suite's stand-ins
(tests/stack/standins, built by the `standin_images` fixture) through Compose's own
COMPOSE_FILE, which scripts/up honours; the files only swap the image. The server image is
built by scripts/up itself on the local base image. Root is needed to create the account only.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack_support import (
    MODEL,
    RUN_ID,
    StackUser,
    found_documents,
    inspector,
    points_count,
    record,
    run,
    tool_result,
)

from host_user import HostUser
from qdrant_mcp_memory.tools import READ_TOOLS
from support import REPO, free_port

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]

UP_TIMEOUT_S = 900
# The user's own copies of the files (paths in its checkout).
CORE = ["compose.core.yaml", "tests/stack/compose.standins.core.yaml"]
USERS_LEAN = ["compose.yaml", CORE[1]]  # a COMPOSE_FILE with an overlay of the user's; --lean makes it CORE
FULL = ["compose.yaml", "tests/stack/compose.standins.core.yaml", "tests/stack/compose.standins.observability.yaml"]
READ_ONLY_DEMO = [*FULL[:1], "compose.demo-readonly.yaml", *FULL[1:]]
SERVICES = {"qdrant", "mcp-server", "otel-collector", "prometheus", "tempo", "loki", "grafana"}
NO_HEALTHCHECK = {"otel-collector"}  # FROM scratch: compose.yaml gates on service_started
NOTE = "The quarterly report for the board is due on the first Friday of March."
ASKED = "when must the board's report be handed in?"  # other words than the note's


@dataclass
class UserStack:
    user: HostUser
    checkout: Path
    ports: dict[str, int]
    project: str
    inspector_token: str

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    @property
    def mcp(self) -> str:
        return self.url("MCP", "/mcp")

    def secret(self, name: str) -> str:
        return (self.checkout / "secrets" / name).read_text().strip()

    def up(self, *args: str, files: list[str] | None = FULL, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """scripts/up as the user; the stand-ins come in through COMPOSE_FILE (None: .env's, if any)."""
        return self.user.run(
            [str(self.checkout / "scripts" / "up"), *args],
            cwd=self.checkout,
            env={"COMPOSE_FILE": ":".join(files)} if files is not None else {},
            timeout=timeout,
            check=False,
        )

    def images(self, files: list[str]) -> dict[str, str]:
        """service -> the image its container runs."""
        ps = self.compose("ps", "--format", "json", files=files).stdout
        return {row["Service"]: row["Image"] for row in map(json.loads, filter(str.strip, ps.splitlines()))}

    def compose(self, *args: str, files: list[str] = FULL, timeout: float = 300, check: bool = True):
        """Plain `docker compose` as the user, in its checkout (its .env applies)."""
        flags = [arg for name in files for arg in ("-f", name)]
        return self.user.run(["docker", "compose", *flags, *args], cwd=self.checkout, timeout=timeout, check=check)

    def health(self, files: list[str] = FULL) -> dict[str, str]:
        """service -> "running healthy" (or "running" without a health check), as Compose reports it."""
        ps = self.compose("ps", "--all", "--format", "json", files=files).stdout
        rows = [json.loads(line) for line in ps.splitlines() if line.strip()]
        return {row["Service"]: f"{row['State']} {row.get('Health') or ''}".strip() for row in rows}

    def logs(self, service: str, files: list[str] = FULL) -> str:
        return self.compose("logs", "--no-color", service, files=files).stdout


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # http:// on loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # same
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for_line(stack: UserStack, service: str, pattern: str, timeout: float = 90) -> str:
    """The first line of `service`'s logs matching `pattern`, waited for."""
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        logs = stack.logs(service)
        found = re.search(pattern, logs, re.M)
        if found:
            return found[0]
        time.sleep(2)
    raise AssertionError(f"no line /{pattern}/ from {service} within {timeout:.0f} s:\n{logs[-3000:]}")


@pytest.fixture(scope="module")
def stack(base_image: str, standin_images: None, stack_user: StackUser) -> Iterator[UserStack]:
    user, checkout = stack_user.user, stack_user.checkout
    ports = {name: free_port() for name in ("MCP", "GRAFANA", "QDRANT_HTTP", "QDRANT_GRPC", "INSPECTOR")}
    project = f"stackuser-{RUN_ID}".replace(".", "-")
    token = secrets.token_hex(16)
    # .env as the user makes it: .env.example with the ports, the project and the image changed.
    settings = {f"{name}_PUBLISH_PORT": str(port) for name, port in ports.items()} | {
        "COMPOSE_PROJECT_NAME": project,
        "MCP_IMAGE": f"qdrant-mcp-stack/mcp-server:user-{RUN_ID}",
        "PYTHON_IMAGE": base_image,
        "INSPECTOR_API_TOKEN": token,
        "OTEL_METRIC_EXPORT_INTERVAL": "2000",
    }
    dotenv = (REPO / ".env.example").read_text()
    for key, value in settings.items():
        dotenv = re.sub(rf"^{key}=.*$", f"{key}={value}", dotenv, flags=re.M)
    staged = user.home / ".env.staged"
    staged.write_text(dotenv)
    user.copy_in([(staged, checkout / ".env")])
    staged.unlink()
    stack = UserStack(user, checkout, ports, project, token)
    try:
        yield stack
    finally:
        down = stack.compose("--profile", "*", "down", "-v", "--remove-orphans", files=READ_ONLY_DEMO, check=False)
        run(["docker", "image", "rm", "-f", settings["MCP_IMAGE"]], check=False)
        (checkout / ".env").unlink()
        left = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"]).stdout
        assert down.returncode == 0 and not left.strip(), f"{down.stderr}\nleft behind: {left}"


def test_the_full_stack_starts_for_a_user_and_every_service_serves(stack: UserStack, inspector_cli: list[str]) -> None:
    proc = stack.up(timeout=UP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    steps = re.findall(r"^\[(\d)/4\] (.+) \(at (\d+) s\)$", proc.stderr, re.M)
    assert [s[0] for s in steps] == ["1", "2", "3", "4"], proc.stderr[-3000:]
    ready = re.search(r"^up: ready in (\d+) s$", proc.stderr, re.M)
    assert ready, proc.stderr[-2000:]
    record("scripts_up_as_user_s", int(ready[1]))
    health = stack.health()
    assert set(health) == SERVICES, health
    for service, state in health.items():
        assert state == ("running" if service in NO_HEALTHCHECK else "running healthy"), health

    # The summary names the ports .env chose, and the user's secrets: its own, private, 0640.
    assert f"MCP endpoint  {stack.mcp}\n" in proc.stdout, proc.stdout
    assert f"Grafana       {stack.url('GRAFANA')}   user: admin" in proc.stdout, proc.stdout
    assert "token: cat ./secrets/mcp_auth_token" in proc.stdout
    dotenv = (stack.checkout / ".env").read_text()
    assert f"SECRETS_GID={stack.user.gid}\n" in dotenv and "SECRETS_DIR=./secrets\n" in dotenv
    folder = stack.checkout / "secrets"
    assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (stack.user.uid, 0o700)
    for name in ("qdrant_api_key", "qdrant_read_only_api_key", "mcp_auth_token", "grafana_admin_password"):
        info = (folder / name).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (stack.user.uid, stack.user.gid, 0o640)
    assert (stack.checkout / "model-cache" / MODEL).is_dir()  # baked from the user's cache, not fetched

    # MCP: the token is required; a note stored is found by its meaning, and Qdrant holds it.
    token = stack.secret("mcp_auth_token")
    code, body = inspector(inspector_cli, stack.mcp, "--method", "tools/list")
    assert code != 0, body
    tool_result(inspector_cli, stack.mcp, "qdrant-store", f"information={NOTE}", token=token)
    assert found_documents(inspector_cli, stack.mcp, ASKED, token=token)[0] == NOTE
    status, body = http(stack.url("QDRANT_HTTP", "/collections/memories"), {"api-key": stack.secret("qdrant_api_key")})
    assert status == 200 and json.loads(body)["result"]["points_count"] == 1, body
    assert http(stack.url("QDRANT_HTTP", "/collections"))[0] == 401  # the API key is enforced

    # Grafana read its admin password from the secret (an unreadable file would leave admin:admin).
    assert http(stack.url("GRAFANA", "/api/health"))[0] == 200
    login = base64.b64encode(f"admin:{stack.secret('grafana_admin_password')}".encode()).decode()
    assert http(stack.url("GRAFANA", "/api/user"), {"Authorization": f"Basic {login}"})[0] == 200
    default = base64.b64encode(b"admin:admin").decode()
    assert http(stack.url("GRAFANA", "/api/user"), {"Authorization": f"Basic {default}"})[0] == 401

    # The collector read the read-only key and scraped Qdrant; the server's telemetry went through
    # it to Prometheus, Loki and Tempo.
    wait_for_line(stack, "otel-collector", r"scrape qdrant:6333/metrics -> 200$")
    for kind, backend in (("metrics", "prometheus"), ("logs", "loki"), ("traces", "tempo")):
        wait_for_line(stack, "otel-collector", rf"received OTLP {kind}: \d+ bytes, exported -> 200$")
        wait_for_line(stack, backend, rf"received OTLP {kind}: \d+ bytes$")

    status = stack.up("status")
    assert status.returncode == 0 and f"MCP endpoint  {stack.mcp}\n" in status.stdout, status.stdout + status.stderr
    # `logs` follows: the server's lines arrive, and it keeps following until stopped.
    with stack.user.popen(
        [str(stack.checkout / "scripts" / "up"), "logs", "mcp-server"],
        cwd=stack.checkout,
        env={"COMPOSE_FILE": ":".join(FULL)},
    ) as follower:
        assert follower.stdout is not None
        stop = threading.Timer(30, follower.terminate)  # still following after 30 s: the lines are not there
        stop.start()
        seen = []
        for line in follower.stdout:
            seen.append(line)
            if '"message": "ready"' in line:
                break
        stop.cancel()
        follower.terminate()
    assert any('"message": "ready"' in line for line in seen), "".join(seen)


def test_the_inspector_on_another_port_serves_and_saves_its_servers(stack: UserStack) -> None:
    """INSPECTOR_PUBLISH_PORT moved off 6274: the browser's Origin carries that port; the
    Inspector writes ~/.mcp-inspector/mcp.json on first use (into a volume its user owns)."""
    stack.compose("--profile", "inspector", "up", "-d", "--wait", "inspector", timeout=240)
    origin = stack.url("INSPECTOR")
    headers = {"Origin": origin, "x-mcp-remote-auth": f"Bearer {stack.inspector_token}"}
    status, body = http(stack.url("INSPECTOR", "/api/servers"), headers)
    assert status == 200 and "mcpServers" in json.loads(body), (status, body)
    saved = stack.compose("--profile", "inspector", "exec", "-T", "inspector", "ls", "/home/node/.mcp-inspector").stdout
    assert "mcp.json" in saved.split(), saved
    stack.compose("--profile", "inspector", "rm", "--stop", "--force", "inspector", timeout=120)


def test_the_demo_keeps_to_its_own_collection(stack: UserStack, inspector_cli: list[str]) -> None:
    """The demo seeds and sends traffic through a server of its own (DEMO_COLLECTION); the user's
    collection keeps exactly its note, across the demo's run, its `down` and the next `up`."""
    token = stack.secret("mcp_auth_token")
    before = points_count(inspector_cli, stack.mcp, token=token)
    demo = stack.compose(
        "--profile", "demo", "run", "--rm", "-e", "DEMO_DURATION=8", "-e", "DEMO_RATE=4", "demo", timeout=400
    )  # fmt: skip
    out = demo.stdout
    assert "demo: done" in out and re.search(r"^traffic: \S+ #\d+ store ", out, re.M), out + demo.stderr
    assert re.search(r"^traffic: stopped after \d+ calls .*; 0 failed;", out, re.M), out
    listed = tool_result(inspector_cli, stack.mcp, "qdrant-list-collections", token=token)["collections"]
    assert {"memories", "demo-memories"} <= set(listed), listed
    assert points_count(inspector_cli, stack.mcp, token=token) == before
    stack.compose("--profile", "demo", "down", timeout=240)
    proc = stack.up(timeout=UP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert points_count(inspector_cli, stack.mcp, token=token) == before
    assert found_documents(inspector_cli, stack.mcp, "which database stores vectors?", token=token) == [NOTE]


def test_the_read_only_demo_serves_its_collection_and_never_the_users(
    stack: UserStack, inspector_cli: list[str]
) -> None:
    token = stack.secret("mcp_auth_token")
    proc = stack.compose("up", "-d", "--wait", "--no-build", files=READ_ONLY_DEMO, timeout=600)
    health = stack.health(READ_ONLY_DEMO)
    assert health.pop("demo-seed") == "exited", health
    for service, state in health.items():
        assert state == ("running" if service in NO_HEALTHCHECK else "running healthy"), health
    assert "demo: done" in stack.logs("demo-seed", READ_ONLY_DEMO), proc.stderr
    code, body = inspector(inspector_cli, stack.mcp, "--method", "tools/list", token=token)
    tools = {tool["name"] for tool in body["result"]["tools"]} if code == 0 else body
    assert tools == set(READ_TOOLS), tools  # every read tool, no write tool
    assert found_documents(inspector_cli, stack.mcp, "which database stores vectors?", token=token)[0] == (
        "Qdrant is a vector database written in Rust; it stores points with payloads."
    )
    assert NOTE not in found_documents(inspector_cli, stack.mcp, ASKED, token=token)
    with pytest.raises(urllib.error.URLError):  # Qdrant's port is not published in the read-only demo
        http(stack.url("QDRANT_HTTP", "/readyz"))
    stack.compose("down", files=READ_ONLY_DEMO, timeout=240)


def test_the_lean_layer_starts_for_a_user(stack: UserStack, inspector_cli: list[str]) -> None:
    """`scripts/up --lean` puts the core layer in place of compose.yaml and keeps the other files
    COMPOSE_FILE names (a user's own overlays; here the stand-ins, without which it would pull the
    real Qdrant), whether COMPOSE_FILE comes from the environment or, as Compose reads it, .env."""
    token = stack.secret("mcp_auth_token")
    standin = "qdrant-mcp-standin/qdrant/qdrant:v1.19.0"
    proc = stack.up("--lean", files=USERS_LEAN, timeout=UP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    health = stack.health(CORE)
    assert health == {"qdrant": "running healthy", "mcp-server": "running healthy"}, health
    assert stack.images(CORE)["qdrant"] == standin
    assert found_documents(inspector_cli, stack.mcp, ASKED, token=token)[0] == NOTE  # the same volume

    dotenv = stack.checkout / ".env"  # the user's file: rewriting it in place keeps its owner and mode
    kept = dotenv.read_text()
    dotenv.write_text(f"{kept}COMPOSE_FILE={':'.join(USERS_LEAN)}\n")
    try:
        proc = stack.up("--lean", files=None, timeout=UP_TIMEOUT_S)
    finally:
        dotenv.write_text(kept)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert stack.images(CORE)["qdrant"] == standin

    down = stack.up("down", files=CORE, timeout=240)
    assert down.returncode == 0, down.stderr
