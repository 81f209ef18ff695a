"""The unprivileged user the script tests run scripts as."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from script_support import User


@pytest.fixture
def unprivileged_user() -> Iterator[User]:
    """A new user with its own home and group, in no other group (so not in `docker`); removed after.
    Creating users needs root, as CI runs."""
    if os.geteuid() != 0:
        pytest.fail("the script tests create a real unprivileged user: run them as root (as CI does)")
    name = f"qmm-{uuid.uuid4().hex[:8]}"
    home = Path("/tmp") / name  # outside root's 0700 pytest folders, so the user can reach it
    subprocess.run(["useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/bash", name], check=True)
    entry = pwd.getpwnam(name)
    try:
        yield User(name, entry.pw_uid, entry.pw_gid, home)
    finally:
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
