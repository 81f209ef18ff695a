"""mcp-server under Compose itself: compose.yaml + tests/stack/compose.test.yaml (which
replaces what cannot be pulled here), `up --wait`, a tool call, the demo profile, `down -v`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_support import HERE, RUN_ID, call_tool, inspector, record, run

from support import free_port

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

UP_TIMEOUT_S = 180
# `up` as the suite runs it: healthy or fail, the image the suite built, nothing pulled.
UP = ("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), "--no-build", "--pull", "never")


class Project:
    def __init__(self, name: str, env: dict[str, str], port: int) -> None:
        self.name, self.env, self.port = name, env, port
        self.url = f"http://127.0.0.1:{port}/mcp"

    def compose(self, *args: str, timeout: float = 300, check: bool = True):
        cmd = ["docker", "compose", "-f", "compose.yaml", "-f", str(HERE / "compose.test.yaml"), "-p", self.name, *args]
        return run(cmd, env=self.env, timeout=timeout, check=check)

    def up(self, service: str = "mcp-server"):
        return self.compose(*UP, service, timeout=UP_TIMEOUT_S + 60)


@pytest.fixture(scope="module")
def project(server_image: str, secrets_dir: Path) -> Iterator[Project]:
    port = free_port()
    env = {
        "MCP_IMAGE": server_image,
        "SECRETS_DIR": str(secrets_dir),
        "MCP_PUBLISH_PORT": str(port),
        "BIND_ADDRESS": "127.0.0.1",
    }
    p = Project(f"stacktest-{RUN_ID}".replace(".", "-"), env, port)
    try:
        yield p
    finally:
        logs = p.compose("logs", "--no-color", "--tail", "50", check=False, timeout=60)
        print(f"--- {p.name} logs ---\n{logs.stdout[-3000:]}")
        p.compose("--profile", "demo", "down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=120)
        left = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={p.name}"], check=False)
        assert not left.stdout.strip(), f"containers left behind: {left.stdout}"


def test_up_wait_healthy(project: Project) -> None:
    start = time.monotonic()
    project.up()
    took = round(time.monotonic() - start, 1)
    record("compose_up_to_healthy_s", took)
    ps = project.compose("ps", "--format", "{{.Service}} {{.Health}}").stdout.split("\n")
    assert any(line.strip() == "mcp-server healthy" for line in ps), ps


def test_tool_call_through_published_port(project: Project, inspector_cli: list[str], auth_token: str) -> None:
    code, body = call_tool(
        inspector_cli, project.url, "qdrant-store", "information=stored through compose", token=auth_token
    )
    assert code == 0, body
    code, body = inspector(
        inspector_cli, project.url, "--method", "tools/call", "--tool-name", "qdrant-list-collections", token=auth_token
    )
    assert code == 0, body
    assert "stack-test" in str(body), body


def test_demo_profile_seeds_through_mcp(project: Project) -> None:
    """The demo service's default command seeds, then sends traffic; with DEMO_DURATION it exits 0
    (demo/traffic.py itself: tests/demo/test_traffic.py)."""
    run = ("--profile", "demo", "run", "--rm", "--no-deps", "--pull", "never")
    proc = project.compose(*run, "-e", "DEMO_DURATION=5", "-e", "DEMO_RATE=4", "demo", timeout=240)
    out = proc.stdout
    assert "demo: done" in out, out + proc.stderr
    assert "qdrant-find" in out
    assert re.search(r"^traffic: \S+ #\d+ find .* -> \d+ hits", out, re.M), out
    assert re.search(r"^traffic: stopped after \d+ calls .*; 0 failed;", out, re.M), out
    # Seeding alone, as documented.
    proc = project.compose(*run, "demo", "/demo/seed.py", timeout=240)
    assert "demo: done" in proc.stdout and "traffic:" not in proc.stdout, proc.stdout + proc.stderr


def test_readonly_demo_serves_the_seeded_collection(
    server_image: str, secrets_dir: Path, inspector_cli: list[str], auth_token: str
) -> None:
    """compose.demo-readonly.yaml: a one-shot job seeds through a private writable server, then
    mcp-server serves that collection with read tools only, behind the token (docs/demo.md)."""
    port = free_port()
    env = {"MCP_IMAGE": server_image, "SECRETS_DIR": str(secrets_dir), "MCP_PUBLISH_PORT": str(port)}
    name = f"stackro-{RUN_ID}".replace(".", "-")
    # compose.test.yaml before the read-only override: it resets mcp-server's depends_on, which
    # must keep the seeding job that compose.demo-readonly.yaml adds.
    files = [
        "compose.yaml",
        HERE / "compose.test.yaml",
        "compose.demo-readonly.yaml",
        HERE / "compose.test-readonly.yaml",
    ]
    base = ["docker", "compose", *(arg for f in files for arg in ("-f", str(f))), "-p", name]
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        run([*base, *UP, "mcp-server"], env=env, timeout=UP_TIMEOUT_S + 120)
        seeded = run([*base, "logs", "--no-color", "demo-seed"], env=env).stdout
        assert "demo: done" in seeded, seeded
        code, body = inspector(inspector_cli, url, "--method", "tools/list", token=auth_token)
        assert code == 0, body
        assert "qdrant-find" in str(body) and "qdrant-store" not in str(body) and "qdrant-delete" not in str(body)
        code, body = call_tool(
            inspector_cli, url, "qdrant-find", "query=which database stores vectors?", token=auth_token
        )
        assert code == 0 and "Qdrant is a vector database" in str(body), body
        code, body = inspector(inspector_cli, url, "--method", "tools/list", token="")
        assert code != 0, body  # the token is required
    finally:
        run([*base, "down", "-v", "--remove-orphans", "--timeout", "20"], env=env, check=False, timeout=120)


def test_restart_keeps_data(project: Project, inspector_cli: list[str], auth_token: str) -> None:
    """The embedded store lives in the mcp-data volume: it survives a container restart."""
    project.compose("restart", "mcp-server", timeout=120)
    project.up()
    code, body = call_tool(inspector_cli, project.url, "qdrant-find", "query=stored through compose", token=auth_token)
    assert code == 0, body
    assert "stored through compose" in str(body), body


def test_dev_override_runs_working_tree(server_image: str, secrets_dir: Path) -> None:
    """compose.override.yaml: the bind-mounted server/src is what runs (what `watch` restarts)."""
    env = {
        "MCP_IMAGE": server_image,
        "SECRETS_DIR": str(secrets_dir),
        "MCP_PUBLISH_PORT": str(free_port()),
    }
    name = f"stackdev-{RUN_ID}".replace(".", "-")
    base = [
        "docker",
        "compose",
        "-f",
        "compose.yaml",
        "-f",
        "compose.override.yaml",
        "-f",
        str(HERE / "compose.test.yaml"),
        "-p",
        name,
    ]
    try:
        run([*base, *UP, "mcp-server"], env=env, timeout=UP_TIMEOUT_S + 60)
        out = run(
            [
                *base,
                "exec",
                "-T",
                "mcp-server",
                "python",
                "-c",
                "import qdrant_mcp_memory; print(qdrant_mcp_memory.__file__)",
            ],
            env=env,
        ).stdout.strip()
        assert out == "/app/src/qdrant_mcp_memory/__init__.py", out
        assert (
            run(["docker", "inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", f"{name}-mcp-server-1"]).stdout.strip()
            == "true"
        )
    finally:
        run([*base, "down", "-v", "--remove-orphans", "--timeout", "20"], env=env, check=False, timeout=120)
