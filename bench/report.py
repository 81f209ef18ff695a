"""The Markdown report: the run's header, each phase's section, and the verdict.

Numbers are formatted here; each phase renders its own section (`markdown(result)` in its
module) with the helpers below, so every target table reads the same: the metric, the
value, the target, and "met" / "**not met**" (targets are measured, never asserted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .provenance import VERSION_PACKAGES


def number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ratio(numerator: Any, denominator: Any) -> float | None:
    numbers = (int, float)
    if not isinstance(numerator, numbers) or not isinstance(denominator, numbers) or not denominator:
        return None
    return numerator / denominator


def percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.0f}%"


def check(met: bool | None, target: str = "x") -> str:
    if met is None:
        return "n/a" if target else ""
    return "met" if met else "**not met**"


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def target_row(metric: str, value: Any, target: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"metric": metric, "value": value, "target": target, "met": met, "note": note}


def targets_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| metric | value | target | check |", "|---|---:|---|---|"]
    for row in rows:
        metric = row["metric"] + (f" — {row['note']}" if row.get("note") else "")
        lines.append(f"| {metric} | {number(row['value'])} | {row['target']} | {check(row['met'], row['target'])} |")
    return "\n".join(lines)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; `align` is one character per column, "l" or "r" (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def server_line(name: str, argv: Sequence[str], versions: dict[str, str], source: dict[str, Any] | None) -> str:
    line = f"- **{name}**: `{' '.join(argv)}` — " + ", ".join(
        f"{package} {versions[package]}" for package in VERSION_PACKAGES if package in versions
    )
    if source:
        line += (
            f"; server/src sha256 {source['server_src_sha256']} (git HEAD {source.get('git_head')}, newest file "
            f"{source['newest_mtime']})"
        )
    return line


def document(report: dict[str, Any], sections: dict[str, Callable[[dict[str, Any]], str]]) -> str:
    """The whole report: header, then each phase that ran, in the order it ran."""
    meta = report["meta"]
    client = (
        f"mcp {meta['client_versions'].get('mcp')} SDK `Client`"
        if meta.get("client", "sdk") == "sdk"
        else "raw httpx JSON-RPC (`--client raw`, not the SDK)"
    )
    parts = [
        f"## qdrant-mcp benchmark ({'quick' if meta['quick'] else 'full'}) — {meta['started']}",
        "",
        f"Machine: {meta['cpus']} CPUs, load average before the run {meta['loadavg_before']}, after "
        f"{meta['loadavg_after']}. Phases: {', '.join(meta['phases'])}. Client: {client} (in-process asyncio, "
        f"one session per client), streamable HTTP on 127.0.0.1, model {meta['model']} from "
        f"`{meta['model_cache']}`, seed {meta['seed']}.",
        "",
    ]
    for name, result in report["phases"].items():
        parts += [f"### {name}", ""]
        if result.get("fatal"):
            parts += [f"**FAILED**: {result['fatal'].splitlines()[0]}", ""]
        if isinstance(result.get("skipped"), str):
            parts += [f"Skipped: {result['skipped']}.", ""]
        render = sections.get(name)
        if render is not None and not result.get("skipped"):
            try:
                parts += [render(result), ""]
            except (KeyError, TypeError, ValueError) as exc:  # a partial result: say so, keep the rest
                parts += [f"(section not rendered: {type(exc).__name__}: {exc})", ""]
        if result.get("loadavg_after") is not None:
            parts += [f"Load average after this phase: {result['loadavg_after']}.", ""]
    verdict = "PASS" if report["ok"] else "FAIL"
    parts.append(f"Result: **{verdict}** (errors must be 0 and every phase must finish; speed is not asserted).")
    return "\n".join(parts)
