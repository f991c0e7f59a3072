"""`cnnexp ui`: the MLflow UI for the same store the commands write to.

`mlflow ui` runs in a process group of its own with its uvicorn workers; Ctrl-C, SIGTERM and
SIGHUP on `cnnexp ui` stop that whole group, so no worker is left holding the port."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from cnnexp.console import err
from cnnexp.errors import BadInput
from cnnexp.tracking import query
from cnnexp.tracking.store import client, shown_uri, tracking_uri

STOP_SECONDS = 10  # how long the server gets to stop after SIGTERM before SIGKILL


def ui_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]


def ui_env() -> dict[str, str]:
    """The store is handed over in the environment, not on the command line, where `ps`
    would show a password in it."""
    env = dict(os.environ)
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        env["MLFLOW_BACKEND_STORE_URI"] = uri
    return env


def check_address(host: str, port: int) -> None:
    """Bad input, before anything starts: a port outside 1..65535, a host that is not an
    address of this machine, a port already in use."""
    if not 1 <= port <= 65535:
        raise BadInput(f"--port {port}: a port is a number from 1 to 65535 (e.g. --port 5000)")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise BadInput(f"--host {host}: not a valid address "
                       f"({getattr(exc, 'strerror', None) or exc}); use 127.0.0.1, or 0.0.0.0 "
                       "for every interface") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(addr)
        except OSError as exc:
            raise BadInput(_bind_problem(host, port, exc)) from None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        free = next_free_port(host, port)
        hint = f" (try --port {free})" if free else ""
        return f"port {port} on {host} is already in use, by another program or UI{hint}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"--host {host} is not an address of this machine (use 127.0.0.1, or 0.0.0.0 "
                "for every interface)")
    if exc.errno == errno.EACCES:
        return f"port {port} needs administrator rights: use a port above 1023, e.g. --port 5000"
    return f"cannot serve on {host}:{port}: {exc.strerror or exc}"


def next_free_port(host: str, port: int, tries: int = 20) -> int | None:
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, candidate))
                return candidate
            except OSError:
                continue
    return None


WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def exposure(host: str) -> tuple[str, str]:
    """The host to put in links (a wildcard address is not one a browser can open) and the
    warning a wildcard deserves: it listens on every network interface."""
    if host not in WILDCARDS:
        return host, ""
    return WILDCARDS[host], (f"--host {host or '(empty)'} serves the UI on every network "
                             "interface of this machine: anyone who can reach it can read "
                             "and change the runs (MLflow's UI has no login); use 127.0.0.1 "
                             "to keep it local")


def serve(host: str, port: int) -> int:
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        err.print(f"MLflow tracking server at {shown_uri()}: open it in a browser.",
                  highlight=False)
        return 0
    check_address(host, port)
    client()  # a store that cannot be opened is one line of bad input, before the server
    shown_host, warning = exposure(host)
    if warning:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    err.print(f"MLflow UI for {shown_uri()} on http://{shown_host}:{port} (Ctrl-C to stop)",
              highlight=False)
    try:
        links = experiment_links(f"http://{shown_host}:{port}")
    except Exception:  # links are a convenience; the server reports a broken store itself
        links = []
    for line in links:
        err.print(line, highlight=False, soft_wrap=True)
    return run_server(ui_command(host, port), ui_env())


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def run_server(cmd: list[str], env: dict[str, str]) -> int:
    """Run the server in its own process group until it exits or we are told to stop; then
    stop the whole group (the server and its workers)."""
    handled = (signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.signal(s, _raise_stop) for s in handled}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        return proc.wait()
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        stop_group(proc)
        for s, handler in before.items():
            signal.signal(s, handler)


def stop_group(proc: subprocess.Popen, grace: float = STOP_SECONDS) -> None:
    """SIGTERM to the process group, SIGKILL to whatever is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(proc):
            time.sleep(0.1)
        if not _group_alive(proc):
            break
    proc.poll()


def _group_alive(proc: subprocess.Popen) -> bool:
    proc.poll()  # reap the leader: a zombie still counts as a member of its group
    try:
        os.killpg(proc.pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def experiment_links(base: str, limit: int = 8) -> list[str]:
    """Direct links to each experiment's runs table (MLflow 3.17 opens experiments on a GenAI
    overview unless the link asks for its "Model training" view), and under it one link per
    kind of run it holds, each opening that kind's view (tracking/views.py)."""
    from cnnexp.tracking.views import KIND_VIEWS, SHARED_VIEW_TAG, VIEW_KEY, kind_filter

    c = client()
    exps = [(i, n) for i, n in query.experiments(c) if n != "Default"]
    lines = []
    for eid, name in exps[:limit]:
        views = c.get_experiment(eid).tags
        lines.append(f"  {name}: {query.runs_url(base, eid, view=SHARED_VIEW_TAG + VIEW_KEY in views)}")
        for kind, key, label in KIND_VIEWS:
            if SHARED_VIEW_TAG + key in views and c.search_runs(
                    [eid], kind_filter(kind), max_results=1):
                lines.append(f"    {label}: {query.runs_url(base, eid, key=key)}")
    return (["Runs tables:", *lines] if lines else []) + (
        [f"  ... and {len(exps) - limit} more"] if len(exps) > limit else [])
