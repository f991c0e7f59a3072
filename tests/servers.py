"""Real servers for the scale-out tests: a PostgreSQL cluster (Debian's `postgresql` package,
data in a temp folder, loopback only) with an `optuna` and an `mlflow` database, and an
`mlflow server` on top of it (PostgreSQL backend store, artifacts in a temp folder).

Both are started once per test session and stopped at teardown. Tests skip only when
PostgreSQL cannot be installed (`.ci/run` installs it)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "cnnexp", "s3cret-pw"  # the password must never show up in logs or output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    """The newest installed server's bin folder (initdb is not on PATH in Debian)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if
                   Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def ensure_postgresql() -> Path:
    """Install Debian's postgresql when it is missing and we may (root, apt-get); else skip."""
    if pg_bin() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "postgresql"], env=env, capture_output=True)
    found = pg_bin()
    if found is None:
        pytest.skip("PostgreSQL is not installed and could not be (apt-get install postgresql)")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` user (or nobody)."""
    if os.geteuid() != 0:
        return cmd
    user = "postgres" if _user_exists("postgres") else "nobody"
    return ["runuser", "-u", user, "--", *cmd]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@dataclass
class Servers:
    pg_port: int
    mlflow_port: int
    root: Path

    def pg_url(self, db: str, password: bool = True) -> str:
        auth = f"{USER}:{PASSWORD}" if password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.pg_port}/{db}"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"


@contextlib.contextmanager
def postgresql(root: Path) -> Iterator[int]:
    bindir = ensure_postgresql()
    data, sock = root / "pgdata", root / "pgsock"
    sock.mkdir()
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        ent = pwd.getpwnam(user)
        for p in (root, sock, pwfile):
            os.chown(p, ent.pw_uid, ent.pw_gid)
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", USER,
                                 f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                                 "--auth-local=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    port = free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 " \
           "-c fsync=off"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts,
                                 "-l", str(root / "postgres.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True)
    try:
        import psycopg

        conn = psycopg.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD,
                               dbname="postgres", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield port
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                     "-w", "stop"]), capture_output=True)


@contextlib.contextmanager
def serving(cmd: list[str], health_url: str, log_path: Path, env: dict | None = None,
            timeout: float = 180) -> Iterator[subprocess.Popen]:
    """Start `cmd` in a process group of its own, wait until `health_url` answers 200, and
    stop the whole group at the end whatever happens (SIGTERM, then SIGKILL)."""
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(health_url, timeout=2) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{Path(cmd[0]).name} {cmd[1]} did not start:\n" +
                                   log_path.read_text()[-3000:])
            time.sleep(0.5)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@contextlib.contextmanager
def mlflow_server(backend: str, root: Path) -> Iterator[int]:
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    with serving([str(mlflow), "server", "--backend-store-uri", backend,
                  "--artifacts-destination", str(root / "mlartifacts"),
                  "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                 f"http://127.0.0.1:{port}/health", root / "mlflow-server.log"):
        yield port


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """PostgreSQL + mlflow server in a fresh temp folder (not under pytest's root-only tmp)."""
    root = Path(tempfile.mkdtemp(prefix="cnnexp-pg-"))
    try:
        with postgresql(root) as pg_port:
            backend = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{pg_port}/mlflow"
            with mlflow_server(backend, root) as ml_port:
                yield Servers(pg_port, ml_port, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
