"""otel/prometheus/prometheus.yaml must be valid for Debian's promtool 2.42 and Prometheus 3."""

from __future__ import annotations

import subprocess

from obs_support import OTEL, load_yaml, require_binary

CONFIG = OTEL / "prometheus" / "prometheus.yaml"


def test_promtool_check_config():
    promtool = require_binary("promtool")
    run = subprocess.run([promtool, "check", "config", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_prometheus3_only_blocks():
    # The 3.x `otlp:` block is rejected by promtool 2.42; the OTLP receiver is enabled by the
    # --web.enable-otlp-receiver flag instead and the default translation strategy applies.
    cfg = load_yaml(CONFIG)
    assert "otlp" not in cfg
    assert cfg["storage"]["tsdb"]["out_of_order_time_window"]
