"""Reliability suites: print the timings the scenarios recorded (record_property) after the run."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows: list[tuple[str, object]] = []
    for outcome in ("passed", "failed", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) == "call" and "tests/reliability/" in report.nodeid:
                rows.extend(report.user_properties)
    if rows:
        terminalreporter.section("outage timings")
        for key, value in rows:
            terminalreporter.write_line(f"{key}: {value:.3f} s" if isinstance(value, float) else f"{key}: {value}")
