"""What the benchmarks read of /proc: processes, their CPU time and memory, the machine's CPU."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # the command name may hold spaces and parentheses


def pids() -> Iterator[int]:
    return (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())


def descendants(root: int) -> list[int]:
    parents = {pid: int(fields[1]) for pid in pids() if (fields := stat(pid))}
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def postgres_pids(database: str) -> list[int]:
    """The server's own processes and the backends connected to `database`."""
    found = []
    for pid in pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if not title.startswith(("postgres", "/usr/lib/postgresql")):
            continue
        backend = "(" in title or "[local]" in title  # a client connection
        if not backend or f" {database} " in title:
            found.append(pid)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU the (live) processes have used."""
    return sum(int(f[11]) + int(f[12]) for pid in pids if (f := stat(pid))) / TICKS


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def status_kb(pid: int, key: str, path: str = "") -> int:
    """A `key: N kB` line of /proc/PID/status (or of `path`); 0 if absent or gone."""
    try:
        for line in Path(path or f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
