"""What `scripts/test --quick` runs must work on bash 3.2, the bash macOS ships: no construct of
bash 4 or later, and no expansion of an empty array under `set -u` (bash < 4.4 aborts on it with
"unbound variable").

CI has no bash 3.2 (Debian ships none, and no registry here has one), so this is a static check
of the constructs; the whole `scripts/test --quick` was run once under a bash 3.2.57 built from
Apple's published bash-3.2 source, and each rule below was confirmed against that build (mapfile:
"command not found"; `a=(); echo "${a[@]}"` under set -u: "a[@]: unbound variable")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import REPO

# scripts/test --quick runs bootstrap --quick and check; check runs lock; all source lib/common.sh.
QUICK_PATH = ["scripts/test", "scripts/bootstrap", "scripts/check", "scripts/lock", "scripts/lib/common.sh"]

BASH4 = {
    "mapfile/readarray (4.0)": r"\b(mapfile|readarray)\b",
    "coproc (4.0)": r"\bcoproc\b",
    "associative arrays or namerefs (4.0, 4.3)": r"\b(declare|local|typeset)\s+-\w*[An]",
    "declare -g (4.2)": r"\bdeclare\s+-\w*g",
    "case modification ${x,,} ${x^^} (4.0)": r"\$\{\w+(\[[^]]*\])?(\^|,)",
    "transformations ${x@Q} (4.4)": r"\$\{\w+(\[[^]]*\])?@[QEPAaKkUuL]\}",
    "case fall-through ;& ;;& (4.0)": r"(;;&|;&)(\s|$)",
    "&>> and |& (4.0)": r"&>>|\|&",
    "negative subscripts (4.3)": r"\$\{\w+\[-\d+\]",
    "negative substring length (4.2)": r"\$\{\w+:\d+:-\d+\}",
    "[[ -v NAME ]] (4.2)": r"\[\[\s+!?\s*-v\s",
    "automatic file descriptors {fd}> (4.1)": r"\{\w+\}[<>]",
    "wait -n (4.3)": r"\bwait\s+-n\b",
    "EPOCHSECONDS, BASHPID, ... (4.0-5.1)": r"\b(EPOCHSECONDS|EPOCHREALTIME|BASHPID|SRANDOM|BASH_ARGV0)\b",
    "printf %(...)T (4.2)": r"%\([^)]*\)T",
    "shopt options of bash 4+": r"\bshopt\s+-s\s+(globstar|lastpipe|autocd|checkjobs|direxpand|dirspell)",
}
NEVER_EMPTY = "never empty when expanded"  # a comment on an `x=()` line that says why it is safe


def code(text: str) -> list[tuple[int, str]]:
    """Lines without their comments (a # that starts a word), numbered."""
    return [(n, re.sub(r"(^|\s)#.*$", "", line)) for n, line in enumerate(text.splitlines(), 1)]


def problems(text: str) -> list[str]:
    found = [
        f"line {n}: {name}: {line.strip()}"
        for n, line in code(text)
        for name, pattern in BASH4.items()
        if re.search(pattern, line)
    ]
    empty = {m[1] for line in text.splitlines() if (m := re.search(r"\b(\w+)=\(\)", line)) and NEVER_EMPTY not in line}
    for n, line in code(text):
        unguarded = re.sub(r'\$\{(\w+)\[@\]\+"\$\{\1\[@\]\}"\}', "", line)  # ${a[@]+"${a[@]}"} is safe
        for name in sorted(empty):
            if re.search(rf"\$\{{{name}\[[@*]\]\}}", unguarded):
                found.append(f'line {n}: {name} may be empty: guard it as ${{{name}[@]+"${{{name}[@]}}"}}')
    return found


@pytest.mark.parametrize("path", QUICK_PATH)
def test_the_quick_path_avoids_bash4_constructs(path: str) -> None:
    text = (REPO / path).read_text()
    assert not problems(text), f"{path} would fail on bash 3.2 (macOS):\n" + "\n".join(problems(text))


def test_the_quick_path_is_every_script_it_runs() -> None:
    """scripts/test --quick runs bootstrap and check; check runs lock; they all source the lib."""
    test = (REPO / "scripts" / "test").read_text()
    assert "scripts/bootstrap --quick" in test and "scripts/check" in test
    assert "scripts/lock --check" in (REPO / "scripts" / "check").read_text()
    for path in QUICK_PATH[:-1]:
        assert "lib/common.sh" in Path(REPO / path).read_text(), path


def test_the_check_catches_what_it_claims() -> None:
    assert problems("mapfile -t files < <(ls)\n")
    assert problems("declare -A seen=()\n")
    assert problems('echo "${name,,}"\n')
    assert problems('others=()\necho "${others[*]}"\n')
    assert problems('args=()\nrun "${args[@]}"\n')
    assert not problems('args=()\nrun ${args[@]+"${args[@]}"}\n')
    assert not problems(f'files=() # {NEVER_EMPTY}: filled from git\necho "${{files[@]}}"\n')
    assert not problems('echo "${#args[@]}" "${x:-default}" "$@" # mapfile in a comment\n')
