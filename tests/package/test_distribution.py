"""The package as PyPI users get it: built with `uv build`, installed into an empty venv, run as a command."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from support import REPO

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]
PROJECT = tomllib.loads((REPO / "server" / "pyproject.toml").read_text())["project"]
UV = Path(sys.executable).with_name("uv")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [UV, "build", "--out-dir", str(out), str(REPO / "server")], check=True, capture_output=True, timeout=600
    )
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with only the wheel (and its dependencies from the index) installed."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([UV, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True, timeout=120)
    wheel = next(dist.glob("*.whl"))
    subprocess.run(
        [UV, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv


def test_the_distributions_carry_honest_metadata(dist: Path) -> None:
    wheel = next(dist.glob("qdrant_mcp_memory-*.whl"))
    sdist = next(dist.glob("qdrant_mcp_memory-*.tar.gz"))
    assert wheel.name.startswith(f"qdrant_mcp_memory-{PROJECT['version']}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = email.message_from_bytes(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    assert meta["Name"] == "qdrant-mcp-memory" and meta["Version"] == PROJECT["version"]
    assert meta["License-Expression"] == "Apache-2.0" and meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier") or []
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert any(url.startswith("Source, https://") for url in meta.get_all("Project-URL") or [])
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "qdrant_mcp_memory/py.typed" in names
    readme = meta.get_payload()
    assert "uvx qdrant-mcp-memory" in readme and "\\n" not in readme
    with tarfile.open(sdist) as archive:
        members = {Path(m.name).name for m in archive.getmembers()}
    assert {"LICENSE", "README.md", "pyproject.toml"} <= members


def test_the_installed_command_reports_its_version(installed: Path) -> None:
    result = subprocess.run(
        [installed / "bin" / "qdrant-mcp-memory", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == f"qdrant-mcp-memory {PROJECT['version']}"


async def test_the_installed_command_speaks_mcp_over_stdio(installed: Path, tmp_path: Path) -> None:
    """What `uvx qdrant-mcp-memory` gives a desktop client: stdio by default, as the official server."""
    params = StdioServerParameters(
        command=str(installed / "bin" / "qdrant-mcp-memory"),
        args=[],
        env={**os.environ, "QDRANT_URL": ":memory:"},
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        info = client.server_info
    assert {"qdrant-store", "qdrant-find"} <= tools
    assert info is not None and (info.name, info.version) == ("qdrant-mcp-memory", PROJECT["version"])
