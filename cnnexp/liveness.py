"""Is that process still there? One answer for everything that records who is doing the work
(search workers on Optuna trials, the lease on a training run).

A process is named by host, kernel boot, pid namespace, pid and start time. It is judged gone
only when that can be told for sure: same host, boot and pid namespace (machines sharing a
host name, or containers, never judge each other's pids), and the pid is dead, a zombie, or a
different process that reused the pid (another start time). Anything else counts as alive;
heartbeats judge processes that cannot be seen."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any

HOST = socket.gethostname()


def identity() -> dict[str, Any]:
    """This process, as others can later check it."""
    return {"host": HOST, "pid": os.getpid(), "start": proc_start(os.getpid()),
            "boot": _read("/proc/sys/kernel/random/boot_id"), "pidns": _pid_namespace()}


def alive(who: dict[str, Any]) -> bool:
    """False only when we can tell the process is gone (see the module docstring)."""
    me = identity()
    if any(who.get(k) != me[k] for k in ("host", "boot", "pidns") if who.get(k) is not None):
        return True
    pid = int(who["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return False
    start = who.get("start")
    return not (start and proc_start(pid) not in (None, start))


def proc_start(pid: int) -> str | None:
    """Process start time in clock ticks since boot (Linux), to tell a pid's reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
