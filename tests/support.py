"""Running the server as users run it: a subprocess on a loopback port.

The helper lives in bench/serverproc.py, shared with the benchmark (pytest.ini puts the
repository root on sys.path for `import bench`); this module keeps the names tests import.
"""

from __future__ import annotations

from pathlib import Path

from bench.serverproc import ServerNotReady, ServerProcess, free_port, spawn_server, wait_for

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

__all__ = ["REPO", "SHARED", "ServerNotReady", "ServerProcess", "free_port", "spawn_server", "wait_for"]
