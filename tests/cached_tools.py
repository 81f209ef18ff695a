"""Command-line tools from PyPI, installed on first use into a venv of their own and cached.

    from cached_tools import tool_venv
    bin_dir = tool_venv(Path("tests/ci/requirements.txt"), "ci-tools")   # -> <venv>/bin

The venv lives under ${QDRANT_MCP_CACHE:-${XDG_CACHE_HOME:-~/.cache}/qdrant-mcp-stack}/<name>/
(the cache root of scripts/bootstrap), keyed by the exact pins in the requirements file (comments
and order do not count) and the Python version, so changing a pin builds a fresh venv and
parallel sessions build it once (a file lock). A failed install fails the calling test with
pip's output and leaves nothing half-installed behind. Used by tests/ci and tests/deploy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def cache_root() -> Path:
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("QDRANT_MCP_CACHE") or xdg / "qdrant-mcp-stack")


def pins(requirements: Path) -> list[str]:
    """The requirement lines without comments or blank lines, sorted."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return sorted(line for line in lines if line)


def venv_dir(requirements: Path, name: str) -> Path:
    digest = hashlib.sha256("\n".join(pins(requirements)).encode()).hexdigest()[:16]
    return cache_root() / name / f"{digest}-py{sys.version_info[0]}.{sys.version_info[1]}"


def _install(venv: Path, requirements: Path, timeout: float) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
         "-r", str(requirements)],
    ]  # fmt: skip
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.fail(f"installing {requirements.name} failed: {' '.join(step)}\n{proc.stdout}{proc.stderr}")


def tool_venv(requirements: Path, name: str, timeout: float = 900) -> Path:
    """The bin/ directory of a venv holding exactly `requirements`, built once and then reused."""
    venv = venv_dir(requirements, name)
    done = venv / ".installed"
    if not done.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        with open(venv.parent / f"{venv.name}.lock", "w") as lock:  # parallel sessions build once
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                _install(venv, requirements, timeout)
                done.write_text("\n".join(pins(requirements)) + "\n")
    return venv / "bin"
