"""What every phase gets: the options of this run and the shared setup, made once.

The official server's venv is made on first use only, so a run of our server's phases
alone needs no PyPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import provision, servers
from .driver import Connect
from .servers import ServerSpec


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

    def ours(
        self,
        storage: Mapping[str, str] | None = None,
        modes: tuple[str, ...] = ("legacy",),
        metrics_port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> ServerSpec:
        """Our server with this run's interpreter, model cache, the phase's `settings` and --ours-env
        (which wins); in memory unless `storage`."""
        return servers.ours(
            self.ours_python,
            self.model_cache,
            storage=storage,
            extra_env={**(settings or {}), **self.ours_env},
            modes=modes,
            metrics_port=metrics_port,
        )

    def official(self, storage: Mapping[str, str] | None = None) -> ServerSpec:
        return servers.official(self.official_venv(), self.model_cache, storage)

    def log_path(self, name: str) -> Path:
        return self.out_dir / "logs" / f"{name}.log"
