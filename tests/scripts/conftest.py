"""The unprivileged users the script tests run scripts as (tests/host_user.py's accounts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from host_user import HostUser, host_user


@pytest.fixture
def unprivileged_user() -> Iterator[HostUser]:
    """A new user with its own home and group, in no other group (so not in `docker`)."""
    with host_user() as user:
        yield user


@pytest.fixture
def docker_user() -> Iterator[HostUser]:
    """A new user in the `docker` group, as a Linux user who may use the engine."""
    with host_user(groups=("docker",)) as user:
        yield user
