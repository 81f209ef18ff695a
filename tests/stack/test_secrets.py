"""The stack's secrets stay private on disk and least-privileged in the containers."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from support import REPO, compose_layers

SCRIPT = REPO / "scripts" / "secrets"
NAMES = {
    "qdrant_api_key",
    "qdrant_read_only_api_key",
    "mcp_auth_token",
    "grafana_admin_password",
    "keycloak_admin_password",
    "keycloak_demo_password",
    "keycloak_automation_secret",
    "keycloak_reader_secret",
}


def test_secret_files_are_private_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    gid = subprocess.run([SCRIPT, folder], capture_output=True, text=True, check=True).stdout.strip()
    assert gid == str(os.getgid())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = {path.name: path for path in folder.iterdir()}
    assert set(files) == NAMES
    values = {}
    for name, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, name
        values[name] = path.read_text().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", values[name]), name
    assert len(set(values.values())) == len(NAMES)
    (folder / "mcp_auth_token").write_text("chosen-by-the-user-0123456789\n")
    os.chmod(folder, 0o755)  # noqa: S103  # loosened on purpose: the script must make it private again
    subprocess.run([SCRIPT, folder], capture_output=True, check=True)
    assert (folder / "mcp_auth_token").read_text() == "chosen-by-the-user-0123456789\n"  # never overwritten
    assert (folder / "qdrant_api_key").read_text().strip() == values["qdrant_api_key"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # and made private again


def test_services_read_secrets_through_their_group_and_the_collector_only_reads() -> None:
    """Every service given a secret or a file of the checkout joins the files' group: Qdrant too,
    whose root has no CAP_DAC_OVERRIDE under cap_drop: [ALL] (tests/stack/test_scripts_up.py
    runs the stack as a user whose files are theirs)."""
    compose = compose_layers()
    services = compose["services"]
    for name, service in services.items():
        binds = [v for v in service.get("volumes", []) if isinstance(v, str) and v.startswith("./")]
        if service.get("secrets") or binds:
            assert service.get("group_add") == ["${SECRETS_GID:-0}"], name
    assert services["otel-collector"]["secrets"] == ["qdrant_read_only_api_key"]
    collector = (REPO / "otel" / "collector" / "config.yaml").read_text()
    assert "/run/secrets/qdrant_read_only_api_key" in collector and "/run/secrets/qdrant_api_key" not in collector
    assert "QDRANT__SERVICE__READ_ONLY_API_KEY" in " ".join(services["qdrant"]["entrypoint"])
    assert set(compose["secrets"]) >= NAMES


@pytest.mark.parametrize(
    ("engine", "mode"),
    [("Debian GNU/Linux 12 (bookworm) [name=seccomp,profile=builtin]", 0o640),
     ("Docker Desktop [name=seccomp,profile=unconfined name=cgroupns]", 0o644),
     ("Ubuntu 24.04 LTS [name=seccomp,profile=builtin name=rootless name=cgroupns]", 0o644)],
    ids=["linux-engine", "docker-desktop", "rootless"],
)  # fmt: skip
def test_secret_files_are_readable_where_the_engine_hides_their_owner(tmp_path: Path, engine: str, mode: int) -> None:
    """Docker Desktop (its VM's file sharing) and rootless engines (id mapping) show containers
    other owners and groups than the host's: there the files are 0644 behind the 0700 folder;
    on a Linux engine they stay 0640. Docker Desktop cannot run here: `docker` is a stand-in that
    answers `docker info` as each engine does (OperatingSystem, SecurityOptions)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f"#!/bin/sh\necho '{engine}'\n")
    (bin_dir / "docker").chmod(0o755)
    folder = tmp_path / "secrets"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run([SCRIPT, folder], capture_output=True, text=True, check=True, env=env)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {mode}
