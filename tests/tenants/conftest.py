"""Fixtures for the tenancy suite (tests/tenants/): the real OpenID provider, and our server in
OAuth mode with MCP_TENANT_CLAIM on each engine it can serve: the embedded engine, a
qdrant-client local-mode folder (holding a memory written before tenancy, which belongs to no
tenant), and a Qdrant server (the stand-in, or QDRANT_TEST_URL's real one)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from oidc import TENANT_CLAIM, deploy
from standin import spawn_standin
from tenants.tenant_support import ENGINES, TenantDeployment, local_mode_folder


@pytest.fixture(scope="package", params=ENGINES)
def tenants(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantDeployment]:
    engine: str = request.param
    workdir = tmp_path_factory.mktemp(f"tenants-{engine}")
    env = {"MCP_TENANT_CLAIM": TENANT_CLAIM, "QDRANT_ALLOW_ARBITRARY_FILTER": "true"}
    standin = None
    if engine == "local-mode":
        local_mode_folder(workdir / "local")
        env |= {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(workdir / "local")}
    elif engine == "qdrant-server":
        url = os.environ.get("QDRANT_TEST_URL")
        if not url:
            standin = spawn_standin(workdir)
            url = standin.url
        env |= {"QDRANT_URL": url}
    try:
        with deploy(workdir, env) as started:
            yield TenantDeployment(started, engine)
    finally:
        if standin is not None:
            standin.stop()
