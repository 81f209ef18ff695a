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


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags, read as the values they carry (`!reset []` is `[]`)."""


def _untagged(loader: ComposeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return None if node.value in ("", "null", "~") else loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _untagged)


def compose_layers() -> dict[str, Any]:
    """compose.yaml as written, its included layers merged (services, secrets, volumes), before
    interpolation: for checks of what the files say, where `docker compose config` would
    resolve the very ${...} defaults being checked. A service that `extends` another has the
    other's settings under its own."""
    top = yaml.safe_load((REPO / "compose.yaml").read_text())
    merged: dict[str, Any] = {"services": {}, "secrets": {}, "volumes": {}}
    for entry in top.get("include", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        layer = yaml.load((REPO / path).read_text(), ComposeLoader)  # noqa: S506  # a SafeLoader
        for key, values in merged.items():
            values.update(layer.get(key) or {})
    services = merged["services"]
    for name, service in list(services.items()):
        base = service.get("extends")
        if base:
            extended = {key: value for key, value in services[base["service"]].items() if key != "profiles"}
            services[name] = {**extended, **{key: value for key, value in service.items() if key != "extends"}}
    return merged
