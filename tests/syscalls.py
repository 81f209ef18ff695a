"""strace for the durability tests: attached to a running server, which sync calls it made on which
files and when; or running a command, its file-system calls in order.

scripts/strace installs strace for the pipeline (scripts/test runs it); a test that needs it
fails without it rather than skipping. Times are the wall clock (`strace -ttt`, the same
clock as time.time()); each call's end is its start plus the time spent in it (`-T`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SYNC_CALLS = ("fsync", "fdatasync", "msync", "sync_file_range")
# `1234 1733590000.123456 fsync(7</data/wal/open-1>) = 0 <0.012345>`, or split in two lines
# (`... fsync(7</data/wal/open-1> <unfinished ...>` then `1234 ... <... fsync resumed>) = 0 <0.012>`).
_START = re.compile(r"^(?P<pid>\d+)\s+(?P<at>\d+\.\d+)\s+(?P<call>\w+)\((?P<args>.*)$")
_RESUMED = re.compile(r"^(?P<pid>\d+)\s+\d+\.\d+\s+<\.\.\. (?P<call>\w+) resumed>")
_SPENT = re.compile(r"<(?P<spent>\d+\.\d+)>\s*$")
_PATH = re.compile(r"^\d+<(?P<path>[^>]*)>")


@dataclass(frozen=True)
class SyncCall:
    call: str
    path: str | None  # the file or folder of the descriptor (fsync, fdatasync); None for msync
    start: float
    end: float


class SyscallTrace:
    """`strace -f -p PID` for the sync calls of every thread of a process, until `stop()`;
    `fsync_delay_s` makes each fsync and fdatasync that much slower (strace's fault injection), as on
    a slow disk."""

    def __init__(self, pid: int, output: Path, fsync_delay_s: float = 0) -> None:
        strace = shutil.which("strace")
        if strace is None:
            pytest.fail("strace is missing: scripts/strace installs it (scripts/test runs it)")
        self.pid = pid
        self.output = output
        self.messages = output.with_suffix(".stderr")
        argv = [strace, "-f", "-p", str(pid), "-ttt", "-T", "-y", "-o", str(output)]
        argv += ["-e", f"trace={','.join(SYNC_CALLS)}"]
        if fsync_delay_s:
            argv += ["-e", f"inject=fsync,fdatasync:delay_enter={round(fsync_delay_s * 1e6)}"]
        with self.messages.open("wb") as messages:
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=messages)
        self._wait_attached()

    def _wait_attached(self, timeout: float = 20) -> None:
        """Until every thread of the process names a tracer (threads started later are followed by -f)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"strace could not attach to {self.pid}: {self.messages.read_text()}")
            tracers = [
                re.search(r"^TracerPid:\s*(\d+)", status.read_text(), re.M)
                for status in Path(f"/proc/{self.pid}/task").glob("*/status")
            ]
            if tracers and all(found and found.group(1) != "0" for found in tracers):
                return
            time.sleep(0.05)
        pytest.fail(f"strace did not attach to every thread of {self.pid} within {timeout} s")

    def stop(self) -> list[SyncCall]:
        """Detach (the process goes on) and return the sync calls seen."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        return parse(self.output.read_text())


def parse(text: str) -> list[SyncCall]:
    calls: list[SyncCall] = []
    pending: dict[str, tuple[str, str | None, float]] = {}
    for line in text.splitlines():
        if resumed := _RESUMED.match(line):
            started = pending.pop(resumed["pid"], None)
            spent = _SPENT.search(line)
            if started is not None and spent is not None:
                calls.append(SyncCall(started[0], started[1], started[2], started[2] + float(spent["spent"])))
        elif start := _START.match(line):
            path = _PATH.match(start["args"])
            found = (start["call"], path["path"] if path else None, float(start["at"]))
            spent = _SPENT.search(line)
            if "<unfinished ...>" in line:
                pending[start["pid"]] = found
            elif spent is not None:
                calls.append(SyncCall(*found, found[2] + float(spent["spent"])))
    return calls


@dataclass(frozen=True)
class FileCall:
    """One file-system call a traced process made: what, on which paths, and whether it may write."""

    call: str
    paths: tuple[str, ...]
    writes: bool = False


TRACED_CALLS = "openat,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,unlink,unlinkat,rmdir"
_CALL = re.compile(r"^\d+\s+(?P<call>\w+)\((?P<args>.*)$")
# A path argument: a quoted name, after the folder descriptor it is relative to (`7</a/b>, "c"`).
_PATH_ARGUMENT = re.compile(r'(?:(?:\d+|AT_FDCWD)(?:<(?P<folder>[^>]*)>)?,\s*)?"(?P<name>(?:[^"\\]|\\.)*)"')
_DESCRIPTOR_PATH = re.compile(r"^(?:\d+|AT_FDCWD)<(?P<path>[^>]*)>")


def trace_files(argv: list[str], output: Path, timeout: float = 600) -> list[FileCall]:
    """Run `argv` under `strace -f` (its children too) and return its file-system calls in order.

    strace is a test dependency (scripts/strace installs it): a test that needs it fails without it.
    """
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is missing: scripts/strace installs it (scripts/test runs it)")
    options = ["-f", "-y", "-qq", "-s", "4096", "--seccomp-bpf", "-o", str(output), "-e", f"trace={TRACED_CALLS}"]
    subprocess.run([strace, *options, *argv], check=True, timeout=timeout)
    calls = []
    for line in output.read_text().splitlines():
        found = _CALL.match(line)
        if found is None or " = -1 " in line:  # a resumed line, or a call that failed
            continue
        call, args = found["call"], found["args"]
        if call in ("fsync", "fdatasync"):
            descriptor = _DESCRIPTOR_PATH.match(args)
            calls.append(FileCall(call, (descriptor["path"],) if descriptor else ()))
        else:
            writes = call != "openat" or any(flag in args for flag in ("O_WRONLY", "O_RDWR", "O_CREAT"))
            paths = tuple(os.path.join(m["folder"] or "", m["name"]) for m in _PATH_ARGUMENT.finditer(args))
            calls.append(FileCall(call, paths, writes))
    return calls
