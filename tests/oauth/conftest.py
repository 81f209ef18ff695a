"""Fixtures for the OAuth suite (tests/oauth/): a real OpenID provider and our server trusting it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from oidc import OAuthDeployment, deploy


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthDeployment]:
    """oidc-provider on loopback, and our server in MCP_AUTH_MODE=oauth with introspection credentials:
    one pair for the whole folder (the key rotation and the provider's restart leave it as good as new)."""
    with deploy(tmp_path_factory.mktemp("oauth")) as started:
        yield started
