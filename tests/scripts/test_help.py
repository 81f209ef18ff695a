"""Every script in scripts/ answers --help (and -h) with its usage, its header comment, and does
nothing else: no .env, no secrets, no venv, no Compose call, no install.

Each runs from a copy of the scripts beside the files they would act on, with an empty HOME and
a plain PATH, so anything a script did would show up as a new file or as other output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from script_support import PLAIN_PATH, run_bounded, scripts_checkout

from support import REPO

SCRIPTS = sorted(path.name for path in (REPO / "scripts").iterdir() if path.is_file() and os.access(path, os.X_OK))


def header(script: Path) -> str:
    """The comment block under the shebang, without its '# '."""
    lines = script.read_text().splitlines()[1:]
    usage = []
    for line in lines:
        if not line.startswith("#"):
            break
        usage.append(line.removeprefix("#").removeprefix(" "))
    return "\n".join(usage) + "\n"


def snapshot(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def test_every_script_is_covered() -> None:
    assert {"up", "test", "check", "bootstrap", "docker-engine"} <= set(SCRIPTS), SCRIPTS


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_the_usage_and_does_nothing_else(tmp_path: Path, name: str, flag: str) -> None:
    checkout, home = scripts_checkout(tmp_path), tmp_path / "home"
    home.mkdir()
    before = snapshot(checkout)
    script = checkout / "scripts" / name
    proc = run_bounded([str(script), flag], cwd=checkout, timeout=20, env={"PATH": PLAIN_PATH, "HOME": str(home)})
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}{err}"
    assert out == header(script), f"scripts/{name} {flag} printed something else than its usage:\n{out}"
    assert f"scripts/{name}" in out.splitlines()[0], "the usage starts with the script's name"
    assert err == "", err
    assert snapshot(checkout) == before, f"scripts/{name} {flag} changed the checkout"
    assert not any(home.iterdir()), f"scripts/{name} {flag} wrote into HOME: {list(home.rglob('*'))}"
