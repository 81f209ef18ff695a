"""A throw-away unprivileged account on this machine, for tests that must run something as a user
runs it: not as root (the suite's own user), with the user's own files, groups and umask.

Creating and removing an account needs root (useradd, userdel): the suite runs as root in CI and
on the development machines, and the caller fails clearly elsewhere.

    with host_user(groups=("docker",)) as user:
        user.run(["scripts/up"], cwd=user.home / "checkout")
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
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

    def _as_me(self) -> dict[str, object]:
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups), "umask": self.umask}

    def run(
        self,
        cmd: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` as this user; with check, a failure raises with the command's output."""
        proc = subprocess.run(
            cmd, cwd=cwd, env=self.env(env), capture_output=True, text=True, timeout=timeout, **self._as_me()
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"as {self.name}: command failed ({proc.returncode}): {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        return proc

    def popen(self, cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `cmd` as this user, stdout and stderr merged into one text pipe."""
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **self._as_me(),
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


@contextlib.contextmanager
def host_user(groups: Iterable[str] = (), umask: int = 0o022, prefix: str = "qmcp") -> Iterator[HostUser]:
    """A new account (its own group, a home folder) in `groups`; removed with its home afterwards."""
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
