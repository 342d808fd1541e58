"""Linux /proc readings of a server's process tree: CPU seconds and memory.

Shared by `make bench` and the tests (load, FunctionServer, make run's clean stop).
functions-framework runs a gunicorn
master (the process FunctionServer started, which imports function/main.py before forking)
and one worker (which serves every request); `tree(pid)` returns both.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the ")" that ends the command name: state(0) ppid(1) ...
    utime(11) stime(12) ... starttime(19). Raises OSError once the process is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def _ppid_and_times(pid: int) -> tuple[int, int]:
    fields = _fields(pid)
    return int(fields[1]), int(fields[11]) + int(fields[12])


def start_time(pid: int) -> str | None:
    """When pid started (clock ticks since boot): tells a process from a later one reusing its pid."""
    try:
        return _fields(pid)[19]
    except OSError:
        return None


def running(pid: int, started: str | None = None) -> bool:
    """pid is alive and not a zombie (and, given `started`, still the same process)."""
    try:
        fields = _fields(pid)
    except OSError:
        return False
    return fields[0] != "Z" and (started is None or fields[19] == started)


def children(pid: int) -> list[int]:
    """Direct children of pid (scans /proc; no dependency on CONFIG_PROC_CHILDREN)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _ppid_and_times(int(entry))[0] == pid:
                    found.append(int(entry))
            except (OSError, ValueError):
                continue  # exited while we looked
    return found


def tree(pid: int) -> list[int]:
    """pid and all its live descendants."""
    pids, todo = [], [pid]
    while todo and len(pids) < 64:  # bounded: a server tree is a handful of processes
        current = todo.pop()
        pids.append(current)
        todo.extend(children(current))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given live processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            total += _ppid_and_times(pid)[1]
        except OSError:
            continue
    return total / _TICKS


def status_kib(pid: int, field: str) -> int:
    """A `Vm*` field of /proc/<pid>/status (VmRSS = now, VmHWM = peak), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker_pid(master_pid: int, timeout: float = 10.0) -> int:
    """The single gunicorn worker under a functions-framework master.

    The master binds the port before it forks the worker, so a server that already accepts
    connections may not have its worker yet: wait for it (bounded), never guess."""
    deadline = time.monotonic() + timeout
    while True:
        kids = children(master_pid)
        if len(kids) == 1:
            return kids[0]
        if len(kids) > 1 or time.monotonic() > deadline:
            raise RuntimeError(f"expected one gunicorn worker under {master_pid}, found {kids}")
        time.sleep(0.02)
