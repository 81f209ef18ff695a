"""mcp-server under Compose itself: compose.yaml + tests/stack/compose.test.yaml (the server on
embedded Qdrant in its volume), `up --wait`, a tool call, a restart, the dev override, `down -v`;
all of it as the unprivileged user of conftest's `stack_user`, in its checkout, with its secrets.
The whole stack, the demo and the read-only demo: test_scripts_up.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_support import (
    RUN_ID,
    StackUser,
    call_tool,
    found_documents,
    inspector,
    points_count,
    record,
    run,
    tool_result,
)

from support import free_port

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

UP_TIMEOUT_S = 180
# `up` as the suite runs it: healthy or fail, the image the suite built, nothing pulled.
UP = ("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), "--no-build", "--pull", "never")


TEST_OVERRIDE = "tests/stack/compose.test.yaml"


class Project:
    def __init__(self, name: str, env: dict[str, str], port: int, owner: StackUser) -> None:
        self.name, self.env, self.port, self.owner = name, env, port, owner
        self.url = f"http://127.0.0.1:{port}/mcp"

    def compose(
        self,
        *args: str,
        files: tuple[str, ...] = ("compose.yaml", TEST_OVERRIDE),
        timeout: float = 300,
        check: bool = True,
    ):
        flags = [arg for name in files for arg in ("-f", name)]
        cmd = ["docker", "compose", *flags, "-p", self.name, *args]
        return self.owner.user.run(cmd, cwd=self.owner.checkout, env=self.env, timeout=timeout, check=check)

    def up(self, service: str = "mcp-server"):
        return self.compose(*UP, service, timeout=UP_TIMEOUT_S + 60)


@pytest.fixture(scope="module")
def token(user_secrets: Path) -> str:
    return (user_secrets / "mcp_auth_token").read_text().strip()


@pytest.fixture(scope="module")
def project(server_image: str, stack_user: StackUser, user_secrets: Path) -> Iterator[Project]:
    port = free_port()
    env = {
        "MCP_IMAGE": server_image,
        "SECRETS_DIR": str(user_secrets),
        "SECRETS_GID": str(stack_user.user.gid),
        "MCP_PUBLISH_PORT": str(port),
        "BIND_ADDRESS": "127.0.0.1",
    }
    p = Project(f"stacktest-{RUN_ID}".replace(".", "-"), env, port, stack_user)
    try:
        yield p
    finally:
        logs = p.compose("logs", "--no-color", "--tail", "50", check=False, timeout=60)
        print(f"--- {p.name} logs ---\n{logs.stdout[-3000:]}")
        p.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=120)
        left = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={p.name}"], check=False)
        assert not left.stdout.strip(), f"containers left behind: {left.stdout}"


def test_up_wait_healthy(project: Project) -> None:
    start = time.monotonic()
    project.up()
    took = round(time.monotonic() - start, 1)
    record("compose_up_to_healthy_s", took)
    ps = project.compose("ps", "--format", "{{.Service}} {{.Health}}").stdout.split("\n")
    assert any(line.strip() == "mcp-server healthy" for line in ps), ps


def test_tool_call_through_published_port(project: Project, inspector_cli: list[str], token: str) -> None:
    code, body = call_tool(
        inspector_cli, project.url, "qdrant-store", "information=stored through compose", token=token
    )
    assert code == 0, body
    code, body = inspector(
        inspector_cli, project.url, "--method", "tools/call", "--tool-name", "qdrant-list-collections", token=token
    )
    assert code == 0, body
    assert "stack-test" in str(body), body


def test_restart_keeps_data(project: Project, inspector_cli: list[str], token: str) -> None:
    """The embedded store lives in the mcp-data volume: after a restart the server holds the same
    points and finds the note by its meaning (other words than the note's: every find reply
    echoes its query, so searching with the note's own text would prove nothing)."""
    note = "The staging database password rotates every ninety days."
    tool_result(inspector_cli, project.url, "qdrant-store", f"information={note}", token=token)
    before = points_count(inspector_cli, project.url, token=token)
    project.compose("restart", "mcp-server", timeout=120)
    project.up()
    assert points_count(inspector_cli, project.url, token=token) == before
    query = "how often do the credentials of the test environment change?"
    assert found_documents(inspector_cli, project.url, query, token=token)[0] == note


def test_dev_override_runs_working_tree(project: Project) -> None:
    """compose.override.yaml: the bind-mounted server/src (the user's, umask 027) is what runs
    (what `watch` restarts), on a read-only root filesystem."""
    dev = Project(
        f"stackdev-{RUN_ID}".replace(".", "-"), {**project.env, "MCP_PUBLISH_PORT": str(free_port())}, 0, project.owner
    )
    files = ("compose.yaml", "compose.override.yaml", TEST_OVERRIDE)
    try:
        dev.compose(*UP, "mcp-server", files=files, timeout=UP_TIMEOUT_S + 60)
        where = "import qdrant_mcp_memory; print(qdrant_mcp_memory.__file__)"
        out = dev.compose("exec", "-T", "mcp-server", "python", "-c", where, files=files).stdout.strip()
        assert out == "/app/src/qdrant_mcp_memory/__init__.py", out
        readonly = run(["docker", "inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", f"{dev.name}-mcp-server-1"])
        assert readonly.stdout.strip() == "true"
    finally:
        dev.compose("down", "-v", "--remove-orphans", "--timeout", "20", files=files, check=False, timeout=120)
