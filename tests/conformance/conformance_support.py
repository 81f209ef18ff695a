"""The official MCP conformance suite (@modelcontextprotocol/conformance): installing and running it.

The suite needs Node >= 22; machines here have Node 20 and npm. `npm ci` installs the pinned
suite and a Node 22 binary (the `node-linux-<arch>` registry package) from package.json and
package-lock.json beside this file, into a cache directory keyed by the suite's version and a
hash of those two files. Nothing is skipped: if the install fails, the tests fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VERSION = json.loads((HERE / "package.json").read_text())["dependencies"]["@modelcontextprotocol/conformance"]
NODE_MAJOR = 22
PRELOAD = HERE / "bearer_preload.cjs"
INSTALL_TIMEOUT_S = 600
RUN_TIMEOUT_S = 90
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cache_root() -> Path:
    """The same cache as scripts/bootstrap: $QDRANT_MCP_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/qdrant-mcp-stack."""
    if os.environ.get("QDRANT_MCP_CACHE"):
        return Path(os.environ["QDRANT_MCP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qdrant-mcp-stack"


def install_dir() -> Path:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((HERE / name).read_bytes())
    return cache_root() / f"conformance-{VERSION}-{digest.hexdigest()[:12]}"


@dataclass
class Run:
    """One `conformance server --scenario S` run: its exit code, output and checks.json."""

    scenario: str
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    checks: list[dict] = field(default_factory=list)

    def statuses(self, *wanted: str) -> list[dict]:
        return [check for check in self.checks if check.get("status") in wanted]

    @property
    def passed(self) -> bool:
        # The CLI exits 1 only on FAILURE checks; a WARNING means the scenario could not check
        # what it is for (e.g. no session id for server-sse-multiple-streams), so it fails here too.
        return self.returncode == 0 and bool(self.checks) and not self.statuses("FAILURE", "WARNING")

    def report(self) -> str:
        bad = self.statuses("FAILURE", "WARNING")
        return "\n".join(
            [
                f"conformance {VERSION} scenario {self.scenario!r}: exit {self.returncode}",
                f"command: {' '.join(self.command)}",
                "--- failing or warning checks (checks.json):",
                json.dumps(bad, indent=2) if bad else "(none)" if self.checks else "(no checks.json written)",
                "--- the suite's stdout:",
                ANSI.sub("", self.stdout).strip(),
                "--- the suite's stderr:",
                ANSI.sub("", self.stderr).strip() or "(empty)",
            ]
        )


@dataclass(frozen=True)
class ConformanceSuite:
    node: Path
    cli: Path
    package_dir: Path

    def run(self, url: str, scenario: str, out_dir: Path, bearer: str | None = None) -> Run:
        """Run one server scenario against `url`; with `bearer`, every request carries that token."""
        out_dir.mkdir(parents=True, exist_ok=True)
        command = [str(self.node), str(self.cli), "server", "--url", url, "--scenario", scenario, "-o", str(out_dir)]
        env = {key: value for key, value in os.environ.items() if key != "NODE_OPTIONS"}
        env["PATH"] = f"{self.node.parent}{os.pathsep}{env.get('PATH', '')}"
        env["NO_COLOR"] = "1"
        if bearer is not None:
            # 0.1.16 has no option for request headers: the preload adds Authorization (see the file).
            origin = re.match(r"^https?://[^/]+", url)
            assert origin, url
            env["NODE_OPTIONS"] = f"--require {PRELOAD}"
            env["CONFORMANCE_BEARER_TOKEN"] = bearer
            env["CONFORMANCE_BEARER_ORIGIN"] = origin.group(0)
            env["CONFORMANCE_PACKAGE_DIR"] = str(self.package_dir)
        try:
            done = subprocess.run(
                command, env=env, cwd=out_dir, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"conformance {scenario!r} did not finish within {RUN_TIMEOUT_S}s:\n{exc.stdout!r}")
        results = sorted(out_dir.glob(f"server-{scenario}-*/checks.json"))
        checks = json.loads(results[-1].read_text()) if results else []
        return Run(scenario, command, done.returncode, done.stdout, done.stderr, checks)


def _install(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required to install the MCP conformance suite and its Node 22")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, staging / name)
        started = time.monotonic()
        done = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci for the conformance suite failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        (staging / ".installed").write_text(f"npm ci in {time.monotonic() - started:.1f}s\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / ".installed").exists():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check(suite: ConformanceSuite) -> None:
    node = subprocess.run([str(suite.node), "--version"], capture_output=True, text=True, check=False)
    major = re.match(r"v(\d+)\.", node.stdout)
    if node.returncode != 0 or not major or int(major.group(1)) < NODE_MAJOR:
        pytest.fail(f"{suite.node} is not Node >= {NODE_MAJOR}: {node.stdout}{node.stderr}")
    cli = subprocess.run([str(suite.node), str(suite.cli), "--version"], capture_output=True, text=True, check=False)
    if cli.returncode != 0 or cli.stdout.strip() != VERSION:
        pytest.fail(f"the conformance CLI is not version {VERSION}: {cli.stdout}{cli.stderr}")


def installed_suite() -> ConformanceSuite:
    """The suite and its Node, installed into the cache on first use; fails the caller if it cannot."""
    target = install_dir()
    if not (target / ".installed").exists():
        shutil.rmtree(target, ignore_errors=True)  # never a complete install: those are renamed in whole
        _install(target)
    package_dir = target / "node_modules" / "@modelcontextprotocol" / "conformance"
    suite = ConformanceSuite(
        node=target / "node_modules" / ".bin" / "node", cli=package_dir / "dist" / "index.js", package_dir=package_dir
    )
    _check(suite)
    return suite
