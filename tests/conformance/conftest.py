"""Fixtures for the conformance suite (tests/conformance/): the suite itself, installed on demand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Make conformance_support importable whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))

from conformance_support import ConformanceSuite, installed_suite


@pytest.fixture(scope="session")
def conformance() -> ConformanceSuite:
    """Installs the pinned suite and its Node 22 into the cache if missing (a failure fails the tests)."""
    return installed_suite()
