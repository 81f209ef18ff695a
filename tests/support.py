"""Running the server as users run it: a subprocess on a loopback port; reading the compose files.

The helper lives in bench/serverproc.py, shared with the benchmark (pytest.ini puts the
repository root on sys.path for `import bench`); this module keeps the names tests import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.serverproc import ServerNotReady, ServerProcess, free_port, spawn_server, wait_for

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

__all__ = [
    "REPO",
    "SHARED",
    "ServerNotReady",
    "ServerProcess",
    "compose_layers",
    "free_port",
    "spawn_server",
    "wait_for",
]


def compose_layers() -> dict[str, Any]:
    """compose.yaml as written, its included layers merged (services, secrets, volumes), before
    interpolation: for checks of what the files say, where `docker compose config` would
    resolve the very ${...} defaults being checked."""
    top = yaml.safe_load((REPO / "compose.yaml").read_text())
    merged: dict[str, Any] = {"services": {}, "secrets": {}, "volumes": {}}
    for entry in top.get("include", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        layer = yaml.safe_load((REPO / path).read_text())
        for key, values in merged.items():
            values.update(layer.get(key) or {})
    return merged
