"""Measurements of a process tree from /proc: memory, CPU time, threads, and the machine's load;
dropping the page cache for cold starts.

A server's tree is the server and every descendant (the embedded engine's index builder
runs as a child). RSS figures are in KiB as /proc gives them. `MemorySampler` watches a
tree in a thread while a call runs, for peaks that a reading before and after would miss.
"""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str] | None:
    """The fields of a /proc stat file after the command name (which may hold spaces)."""
    try:
        data = Path(path).read_text()
    except OSError:
        return None
    return data[data.rfind(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children = _children()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def status_kib(pid: int, *keys: str) -> dict[str, int]:
    """Fields of /proc/<pid>/status in KiB (VmRSS, VmHWM, ...); empty when the process is gone."""
    found: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition(":")
        if key in keys:
            found[key] = int(value.split()[0])
    return found


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of VmHWM) over `pid` and its descendants."""
    rss = hwm = 0
    for member in process_tree(pid):
        status = status_kib(member, "VmRSS", "VmHWM")
        rss += status.get("VmRSS", 0)
        hwm += status.get("VmHWM", 0)
    return rss, hwm


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, own + waited-for children) of the tree."""
    ticks = 0
    for member in process_tree(pid):
        fields = _stat_fields(f"/proc/{member}/stat")
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def thread_cpu_s(pid: int, tid: int) -> float:
    fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_threads(pid: int) -> int:
    count = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            count += len(os.listdir(f"/proc/{member}/task"))
    return count


def machine_busy_s() -> float:
    """CPU seconds the whole machine (all cores) has spent busy, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


@dataclass
class MemoryPeaks:
    """What a MemorySampler saw, in KiB."""

    main_hwm: int = 0  # VmHWM of the server process itself: the kernel's own peak, never missed
    main_rss_peak: int = 0  # the largest VmRSS of the server process among the samples
    tree_rss_peak: int = 0  # the largest sum of VmRSS over the tree among the samples
    max_processes: int = 0  # the most processes seen in the tree at once (> 1: a child ran)
    samples: int = 0


class MemorySampler:
    """Samples a tree's memory every `interval` seconds in a thread, between start() and stop()."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peaks = MemoryPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> MemoryPeaks:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.peaks

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        peaks = self.peaks
        tree = process_tree(self.pid)
        main = status_kib(self.pid, "VmRSS", "VmHWM")
        total = main.get("VmRSS", 0) + sum(status_kib(p, "VmRSS").get("VmRSS", 0) for p in tree[1:])
        peaks.main_hwm = max(peaks.main_hwm, main.get("VmHWM", 0))
        peaks.main_rss_peak = max(peaks.main_rss_peak, main.get("VmRSS", 0))
        peaks.tree_rss_peak = max(peaks.tree_rss_peak, total)
        peaks.max_processes = max(peaks.max_processes, len(tree))
        peaks.samples += 1


def wait_rss_settled(pid: int, quiet_s: float = 2.0, tolerance_kib: int = 1024, limit_s: float = 30.0) -> int:
    """Wait until the tree's RSS moves less than `tolerance_kib` for `quiet_s` (at most `limit_s`); returns it."""
    deadline = time.monotonic() + limit_s
    last, since = tree_rss_kib(pid)[0], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = tree_rss_kib(pid)[0]
        if abs(now - last) > tolerance_kib:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    return tree_rss_kib(pid)[0]


def drop_page_cache() -> str | None:
    """Write dirty pages out and drop the page cache (as root, or with passwordless sudo), so the
    next process reads its interpreter, libraries and data from disk. None when done, else why not."""
    command = "sync; echo 3 > /proc/sys/vm/drop_caches"
    argv = ["sh", "-c", command] if os.geteuid() == 0 else ["sudo", "-n", "sh", "-c", command]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command}: {exc}"
    return None if done.returncode == 0 else f"{command}: {done.stderr.strip() or done.returncode}"
