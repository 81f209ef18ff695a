"""What the script tests share: a real unprivileged user (the fixture is in conftest.py), a checkout
of the scripts, the plain PATH of a fresh machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import REPO

PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path

    def run(self, argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """ARGV as this user, in a plain login-like environment (runuser, as root)."""
        env = ["env", "-i", f"PATH={PLAIN_PATH}", f"HOME={self.home}", f"USER={self.name}"]
        return run_bounded(["runuser", "-u", self.name, "--", *env, *argv], cwd=cwd, timeout=timeout)


def run_bounded(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """ARGV in a session of its own; on timeout the whole session is killed (whatever a script started
    meanwhile goes too) and the test fails with what it printed."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(argv)} still ran after {timeout} s:\n{out}{err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def scripts_checkout(target: Path, owner: User | None = None) -> Path:
    """The scripts and the files they read, without compose files: nothing here can start a stack."""
    checkout = target / "checkout"
    shutil.copytree(REPO / "scripts", checkout / "scripts")
    for name in (".env.example", "server/pyproject.toml", "server/requirements.lock"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, checkout / name)
    if owner is not None:
        subprocess.run(["chown", "-R", f"{owner.uid}:{owner.gid}", str(target)], check=True)
    return checkout


def require_docker_engine() -> None:
    """These tests need the real engine and its socket (scripts/test starts them with scripts/docker-engine)."""
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"no Docker engine answers (run scripts/docker-engine first):\n{proc.stderr}")
