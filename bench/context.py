"""What every phase gets: the options of this run and the shared setup, made once.

The official server's venv is made on first use only, so a run of our server's phases
alone needs no PyPI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import provision
from .driver import Connect


@dataclass
class Context:
    quick: bool
    seed: int
    out_dir: Path  # results: JSON, Markdown, server logs, profiles
    model_cache: Path  # a fastembed cache holding the model, for every server and the corpus
    ours_python: str
    ours_env: dict[str, str]  # extra settings for our server (--ours-env)
    connect: Connect  # the workload's client (--client)
    client_kind: str
    with_official: bool  # False with --only ours: phases leave the official server out
    options: Any  # the parsed command line, for each phase's own options
    _official_venv: Path | None = field(default=None, repr=False)

    def official_venv(self) -> Path:
        """The official server's venv (made once; BenchError when it cannot be)."""
        if self._official_venv is None:
            self._official_venv = provision.official_venv()
        return self._official_venv

    def log_path(self, name: str) -> Path:
        return self.out_dir / "logs" / f"{name}.log"
