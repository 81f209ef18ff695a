"""Fixtures of the workflow checks (tests/ci/): they need no server, model or Docker."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ci: GitHub Actions workflows, actions and Renovate config (.github/)")
    # Registered by pytest-timeout when installed; declared here so --strict-markers accepts the
    # module's timeout marker without it.
    config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ci)


@pytest.fixture(scope="session", autouse=True)
def offline_model() -> None:
    """Overrides the suite-wide check for the embedding model: nothing here embeds."""
