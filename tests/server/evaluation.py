"""What the search-quality evaluations share: the real model with a memory of what it embedded (each
evaluation set is embedded once per session, however many stores, engines and settings read it),
and their figures as a markdown table and as .cache/eval/<name>.json (the README's tables come from them)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from store_engines import LoadedModel

from qdrant_mcp_memory.embeddings import Kind
from support import REPO


class RememberingModel(LoadedModel):
    """The session's model, embedding each (kind, text) once: the model is deterministic, and it is
    the slow part of an evaluation that stores one set many times."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__(loaded.model, loaded.dimension)
        self._vectors: dict[tuple[Kind, str], list[float]] = {}

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        new = list(dict.fromkeys(text for text in texts if (kind, text) not in self._vectors))
        if new:
            for text, vector in zip(new, await self.model.embed(kind, new), strict=True):
                self._vectors[kind, text] = vector
        return [self._vectors[kind, text] for text in texts]


def markdown_table(table: dict[str, dict[str, float]], digits: int = 2) -> str:
    columns = list(next(iter(table.values())))
    lines = [f"| | {' | '.join(columns)} |", f"|---|{'---|' * len(columns)}"]
    lines += [f"| {name} | {' | '.join(f'{row[c]:.{digits}f}' for c in columns)} |" for name, row in table.items()]
    return "\n".join(lines)


def write_figures(name: str, figures: object) -> None:
    """The evaluation's figures in .cache/eval/<name>.json."""
    out = REPO / ".cache" / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
