"""What the script tests share: a checkout of the scripts, and the engine check. The users they
run scripts as, and the plain PATH of a fresh machine, are tests/host_user.py's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from host_user import HostUser
from support import REPO

# The scripts and the files they read, without compose files: nothing here can start a stack.
CHECKOUT_FILES = (".env.example", "server/pyproject.toml", "server/requirements.lock")


def scripts_checkout(target: Path, owner: HostUser | None = None) -> Path:
    """A checkout of the scripts in `target`: root's, or `owner`'s as that user would have made it."""
    checkout = target / "checkout"
    names = [
        *(str(path.relative_to(REPO)) for path in (REPO / "scripts").rglob("*") if path.is_file()),
        *CHECKOUT_FILES,
    ]
    if owner is not None:
        owner.copy_in((REPO / name, checkout / name) for name in names)
        return checkout
    for name in names:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, checkout / name)
    return checkout


def require_docker_engine() -> None:
    """These tests need the real engine and its socket (scripts/test starts them with scripts/docker-engine)."""
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"no Docker engine answers (run scripts/docker-engine first):\n{proc.stderr}")
