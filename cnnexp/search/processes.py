"""Worker processes on this host and the signals that stop them: `--workers N` spawns N
processes that share the study through its storage; `kill PID` (SIGTERM) stops a search as
cleanly as Ctrl-C, and workers mark and re-queue their running trial when told to stop."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from cnnexp.search.config import Plan
from cnnexp.search.monitor import Monitor
from cnnexp.search.worker import WorkerArgs, worker_main


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """`kill PID` (or a closed terminal's SIGHUP) stops a search as cleanly as Ctrl-C does."""
    from cnnexp.console import stop_signals_as_interrupt

    return stop_signals_as_interrupt()


def run_processes(plan: Plan, opts: Any, devices: list[str], monitor: Monitor) -> None:
    import multiprocessing as mp

    from cnnexp.engine.device import resolve_device

    on_cpu = [resolve_device(devices[i % len(devices)]).type == "cpu" for i in range(opts.workers)]
    threads = max(1, (os.cpu_count() or 1) // max(1, sum(on_cpu)))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, name=f"cnnexp-search-{i}", args=(WorkerArgs(
        plan, i, devices[i % len(devices)], threads if on_cpu[i] else None, opts.heartbeat,
        opts.track),)) for i in range(opts.workers)]
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # children start ignoring Ctrl-C
    try:
        for p in procs:
            p.start()
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.25)
            monitor.refresh()
    except KeyboardInterrupt:
        for p in procs:  # workers mark and re-queue their running trial on SIGTERM
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
        raise
    bad = [f"worker {i} exit {p.exitcode}" for i, p in enumerate(procs) if p.exitcode]
    if bad:
        monitor.say("[yellow]warning:[/] " + ", ".join(bad))


