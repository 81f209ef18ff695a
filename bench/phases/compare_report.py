"""The comparison's section of the report: servers, targets, every phase, ours/official, profiles."""

from __future__ import annotations

from typing import Any

from .. import profiling
from ..report import check, number, percent, ratio, server_line

SATURATED = 0.85  # client CPU share of a core from which a phase's throughput is only a lower bound


def markdown(result: dict[str, Any]) -> str:
    plan = result["plan"]
    measured = [s for s in (result["servers"].get("official"), result["servers"].get("ours")) if s]
    official, ours = result["servers"].get("official"), result["servers"].get("ours")
    parts = [
        f"In memory (`QDRANT_URL=:memory:`). N={plan['n_stores']} stores, M={plan['m_finds']} finds per phase, "
        f"clients 1 and {plan['high']}, store-many {plan['many']} docs.",
        "",
    ]
    for server in measured:
        parts.append(server_line(server["name"], server["argv"], server.get("versions", {}), server.get("source")))
        if server.get("fatal"):
            parts.append(f"  - **FAILED**: {server['fatal'].splitlines()[0]}")
    parts += ["", "#### Summary and targets", "", targets_table(result["targets"]), "", "#### Phases", ""]
    parts += [phases_table(measured), ""]
    if official and ours:
        parts += [
            "#### Ours / official per phase (latency ratio < 1 and throughput ratio > 1 favour ours)",
            "",
            compare_table(official, ours),
            "",
        ]
    for server in measured:
        for phase in server.get("phases", []):
            if phase.get("error_samples"):
                parts.append(f"- errors in {server['name']} {phase['phase']}: " + "; ".join(phase["error_samples"][:3]))
    saturated = [
        f"{server['name']}/{phase['phase']}"
        for server in measured
        for phase in server.get("phases", [])
        if (phase.get("client_cpu_util") or 0) >= SATURATED
    ]
    parts.append("")
    if saturated:
        parts.append(
            f"**Client harness saturated a core (client CPU ≥ 85 %) in: {', '.join(saturated)}** — on 2 cores it "
            "competes with the server, so those throughputs are a lower bound."
        )
    else:
        parts.append("Client harness stayed below 85 % of one core in every phase.")
    for server in measured:
        if server.get("profile"):
            parts += ["", profiling.markdown(server["name"], server["profile"])]
    return "\n".join(parts)


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| metric | official | ours | ours/official | target | check |", "|---|---:|---:|---:|---|---|"]
    for row in rows:
        metric = row["metric"] + (f" — {row['note']}" if row["note"] else "")
        lines.append(
            f"| {metric} | {number(row['official'])} | {number(row['ours'])} | {number(row['ratio'])} | "
            f"{row['target']} | {check(row['met'], row['target'])} |"
        )
    return "\n".join(lines)


def phases_table(measured: list[dict[str, Any]]) -> str:
    lines = [
        "| server | mode | phase | clients | n | errors | p50 ms | p95 ms | p99 ms | max ms | ops/s | "
        "client CPU | client CPU ms/op | server CPU | server CPU ms/op | server main thread | other load | RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in measured:
        for p in server.get("phases", []):
            lines.append(
                f"| {server['name']} | {p['mode']} | {p['phase']} | {p['clients']} | {p['n']} | {p['errors']} | "
                f"{number(p.get('p50_ms'))} | {number(p.get('p95_ms'))} | {number(p.get('p99_ms'))} | "
                f"{number(p.get('max_ms'))} | {number(p.get('throughput'), 1)} | {percent(p.get('client_cpu_util'))} | "
                f"{number(p.get('client_cpu_ms_per_op'))} | {percent(p.get('server_cpu_util'))} | "
                f"{number(p.get('server_cpu_ms_per_op'))} | {percent(p.get('server_main_thread_util'))} | "
                f"{number(p.get('other_cpu_util'))} | {number(p.get('server_rss_mb'), 0)} |"
            )
    return "\n".join(lines)


def phase_of(measured: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    for phase in (measured or {}).get("phases", []):
        if phase["phase"] == name:
            return phase
    return None


def compare_table(official: dict[str, Any], ours: dict[str, Any]) -> str:
    lines = [
        "| phase | official p50 | ours p50 | p50 ratio | official p99 | ours p99 | p99 ratio | "
        "official ops/s | ours ops/s | ops/s ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pairs = [(p, phase_of(ours, p["phase"]), p["phase"]) for p in official.get("phases", [])]
    pairs += [
        (p, phase_of(ours, p["phase"] + "_modern"), p["phase"] + " (ours in 2026-07-28 era)")
        for p in official.get("phases", [])
    ]
    for o, u, label in pairs:
        if not u:
            continue
        lines.append(
            f"| {label} | {number(o.get('p50_ms'))} | {number(u.get('p50_ms'))} | "
            f"{number(ratio(u.get('p50_ms'), o.get('p50_ms')))} | {number(o.get('p99_ms'))} | "
            f"{number(u.get('p99_ms'))} | {number(ratio(u.get('p99_ms'), o.get('p99_ms')))} | "
            f"{number(o.get('throughput'), 1)} | {number(u.get('throughput'), 1)} | "
            f"{number(ratio(u.get('throughput'), o.get('throughput')))} |"
        )
    return "\n".join(lines)
