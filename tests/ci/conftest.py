"""Fixtures of the workflow checks (tests/ci/): they need no server, model or Docker."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def offline_model() -> None:
    """Overrides the suite-wide check for the embedding model: nothing here embeds."""
