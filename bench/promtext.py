"""Reading a Prometheus exposition (the server's /metrics with OTEL_METRICS_EXPORTER=prometheus)."""

from __future__ import annotations

import re

import httpx

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def scrape(url: str) -> list[Sample]:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return parse(response.text)


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels`."""
    return sum(v for n, found, v in samples if n == name and all(found.get(k) == x for k, x in labels.items()))


def names(samples: list[Sample]) -> list[str]:
    return sorted({name for name, _, _ in samples})
