"""otel/prometheus/prometheus.yaml is valid for the pinned Prometheus v3.14.0: promtool 3 checks
it, and the fields promtool predates are checked against v3.14.0's config/config.go."""

from __future__ import annotations

import re
import subprocess

import yaml
from obs_support import OTEL, load_yaml, require_binary

CONFIG = OTEL / "prometheus" / "prometheus.yaml"

# Config fields of the pinned v3.14.0 that the tests' promtool (Debian's 3.5) predates, with the
# release that introduced them: checked below against v3.14.0's source, and left out of the copy
# that promtool checks.
NEWER_THAN_DEBIAN = {("storage", "tsdb", "retention"): (3, 8)}

# model.ParseDuration (prometheus/common), the type of TSDBRetentionConfig.Time.
DURATION = re.compile(r"(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")


def _promtool_version(promtool: str) -> tuple[int, int]:
    out = subprocess.run([promtool, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    major, minor = re.search(r"version (\d+)\.(\d+)", out).groups()
    return int(major), int(minor)


def test_promtool_check_config(tmp_path):
    promtool = require_binary("promtool")
    local = _promtool_version(promtool)
    cfg = load_yaml(CONFIG)
    for path, since in NEWER_THAN_DEBIAN.items():
        if local < since:
            *parents, leaf = path
            node = cfg
            for key in parents:
                node = node[key]
            node.pop(leaf, None)
    copy = tmp_path / "prometheus.yaml"
    copy.write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules").symlink_to(CONFIG.parent / "rules")  # rule_files are relative to the config
    run = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr


def test_retention_is_the_config_files_field_not_the_deprecated_flag(compose):
    """v3.14.0 deprecates --storage.tsdb.retention.{time,size} (cmd/prometheus/main.go) for
    storage.tsdb.retention (config/config.go TSDBRetentionConfig: time, size, percentage)."""
    command = " ".join(compose["services"]["prometheus"]["command"])
    assert "--storage.tsdb.retention" not in command, command
    retention = load_yaml(CONFIG)["storage"]["tsdb"]["retention"]
    assert set(retention) <= {"time", "size", "percentage"}, retention
    assert DURATION.fullmatch(str(retention["time"])) and retention["time"] not in ("", "0s"), retention
    assert 0 <= retention.get("percentage", 0) <= 100, retention
