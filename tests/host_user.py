"""A throw-away unprivileged account on this machine, for tests that must run something as a user
runs it: not as root (the suite's own user), with the user's own files, groups and umask.

Creating and removing an account needs root (useradd, userdel): the suite runs as root in CI and
on the development machines, and the caller fails clearly elsewhere.

    with host_user(groups=("docker",)) as user:
        user.run(["scripts/up"], cwd=user.home / "checkout")

`run_bounded` runs a command with a time bound that ends whatever the command started; the
user's commands go through it, and so do the tests' own commands that must run as root.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# What a login shell gives a user on Debian or Ubuntu, without anything of the suite's own
# environment (its venvs, tool caches and pyenv shims are root's).
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HostUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (e.g. docker's)
    home: Path
    umask: int

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A login environment: HOME, USER, a plain PATH, a UTF-8 locale; nothing of root's."""
        base = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": PLAIN_PATH, "LANG": "C.UTF-8"}
        return {**base, **(extra or {})}

    def command(self, cmd: list[str], env: dict[str, str] | None = None) -> list[str]:
        """The argv with which root runs `cmd` as this user: its uid, group and supplementary groups
        (setpriv), its umask and its login environment, nothing of the caller's. Root may wrap it
        in what it must prepare first as root (a mount namespace, say)."""
        groups = f"--groups={','.join(map(str, self.groups))}" if self.groups else "--clear-groups"
        variables = [f"{key}={value}" for key, value in self.env(env).items()]
        umask = ["sh", "-c", f'umask {self.umask:03o} && exec "$@"', "sh"]
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            groups,
            "--",
            "env",
            "-i",
            *variables,
            *umask,
            *cmd,
        ]

    def run(
        self,
        cmd: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` as this user (see run_bounded); with check, a failure raises with its output."""
        proc = run_bounded(self.command(cmd, env), cwd=cwd, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"as {self.name}: command failed ({proc.returncode}): {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        return subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout, proc.stderr)

    def popen(self, cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `cmd` as this user, stdout and stderr merged into one text pipe."""
        return subprocess.Popen(
            self.command(cmd, env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def copy_in(self, files: Iterable[tuple[Path, Path]]) -> None:
        """Copy (source, target) files into this user's space as if the user had made them: owned
        by the user and its group, modes as its umask leaves them (a clone or an unpacked archive)."""
        for source, target in files:
            for folder in reversed([target.parent, *target.parent.parents]):
                if folder.is_relative_to(self.home) and not folder.exists():
                    folder.mkdir(mode=0o777 & ~self.umask)
                    os.chown(folder, self.uid, self.gid)
            shutil.copyfile(source, target)
            os.chmod(target, (0o777 if os.access(source, os.X_OK) else 0o666) & ~self.umask)
            os.chown(target, self.uid, self.gid)


def run_bounded(
    cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`cmd` in a session of its own (with exactly `env` when given); on timeout the whole session
    is killed, so whatever the command started meanwhile goes too, and the caller fails with what
    it printed."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{' '.join(cmd)}\nstill ran after {timeout} s:\n{out[-4000:]}{err[-4000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@contextlib.contextmanager
def host_user(groups: Iterable[str] = (), umask: int = 0o022, prefix: str = "qmcp") -> Iterator[HostUser]:
    """A new account (its own group, a home folder) in `groups`, in no other group without them (so
    not in docker's); removed with its home afterwards."""
    if os.geteuid() != 0:
        raise AssertionError("creating a test user needs root (useradd); run the suite as root")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    command = ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name]
    if groups:
        command[1:1] = ["--groups", ",".join(groups)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    try:
        entry = pwd.getpwnam(name)
        home = Path(entry.pw_dir)
        os.chmod(home, 0o777 & ~umask & ~0o002)
        yield HostUser(
            name=name,
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            groups=tuple(grp.getgrnam(group).gr_gid for group in groups),
            home=home,
            umask=umask,
        )
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
