"""Where the benchmark reads and writes: the repository, its results folder and its cache.

The cache (`$BENCH_CACHE`, default `~/.cache/qdrant-mcp-bench`) keeps what is slow to make
and the same from run to run: the official server's venv, py-spy, the embedded corpus and
the engine folders loaded from it.
"""

from __future__ import annotations

import os
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_PYTHON = REPO / ".venv" / "bin" / "python"


def cache_dir() -> Path:
    folder = Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "qdrant-mcp-bench")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
