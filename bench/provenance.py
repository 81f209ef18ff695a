"""What exactly was benchmarked: package versions on each side, and a fingerprint of our source.

The server is work in progress, so two runs are comparable only when the fingerprint of
`server/src/**/*.py` matches; the report header prints it beside the versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import time
from typing import Any

from .paths import REPO

VERSION_PACKAGES = (
    "mcp-server-qdrant",
    "qdrant-mcp-memory",
    "fastmcp",
    "mcp",
    "qdrant-client",
    "qdrant-edge-py",
    "fastembed",
    "onnxruntime",
    "tokenizers",
    "pydantic",
    "uvicorn",
    "starlette",
    "numpy",
)

_VERSIONS_SCRIPT = """
import importlib.metadata as m, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except Exception:
        pass
print(json.dumps(found))
"""


def package_versions(python: str, names: tuple[str, ...] = VERSION_PACKAGES) -> dict[str, str]:
    """Versions of `names` installed for the interpreter `python` (those it has)."""
    try:
        found = subprocess.run(
            [python, "-c", _VERSIONS_SCRIPT, *names], capture_output=True, text=True, timeout=60, check=False
        )
        return dict(json.loads(found.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def source_fingerprint() -> dict[str, Any]:
    """sha256 of the server's Python sources, their count, the newest file's time and git HEAD."""
    digest = hashlib.sha256()
    files = sorted((REPO / "server" / "src").rglob("*.py"))
    newest = 0.0
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    fingerprint: dict[str, Any] = {
        "server_src_sha256": digest.hexdigest()[:16],
        "files": len(files),
        "newest_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest)) if files else None,
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        fingerprint["git_head"] = head.stdout.strip() or None
    return fingerprint
