"""Opening the tracking store: a fresh SQLite store survives processes racing to create it, and
a store that cannot be used is one line of bad input, quickly."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

# Each process opens the store the way every command does (tracking.client()), then records a
# run. Imports happen before the start line, so the store is opened by all at the same moment.
RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cnnexp.tracking import store
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    ready.touch()
    while not go.exists():
        time.sleep(0.002)
    with store.run("race", ready.name) as run:
        run.log_metrics({"x": 1.0}, step=1)
    print(run.run_id)
""")


def _race(tmp_path: Path, uri: str, n: int) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / f"ready{i}"),
                               str(go)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.slow
def test_processes_racing_on_a_fresh_sqlite_store_all_succeed(tmp_path: Path) -> None:
    """Without the lock, MLflow's migration runs in each process at once: all four crash
    ('Online migration expected to match one row...', 'table _alembic_tmp_... already
    exists') and the store can stay broken."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = _race(tmp_path, uri, 4)
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-800:] for r in results]
    ids = {r.stdout.strip() for r in results}
    c = MlflowClient(uri)  # the store is usable afterwards, by MLflow itself
    exp = c.get_experiment_by_name("race")
    runs = c.search_runs([exp.experiment_id])
    assert {r.info.run_id for r in runs} == ids and len(ids) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    later = c.create_run(exp.experiment_id).info.run_id  # and still takes writes
    c.set_terminated(later)
    assert c.get_run(later).info.status == "FINISHED"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("uri", "expect"), [
    ("http://u:hunter2@127.0.0.1:{port}", "cannot reach the tracking server "
                                          "http://u:***@127.0.0.1:{port} within 5 s: "
                                          "Connection refused"),
    ("postgresql://u:hunter2@127.0.0.1:{port}/mlflow", "cannot open the tracking store "
                                                       "postgresql://u:***@127.0.0.1:{port}/mlflow"),
    ("postgresql://u@127.0.0.1:{port}/mlflow?password=hunter2",
     "postgresql://u@127.0.0.1:{port}/mlflow?password=***"),
    ("postgresql://u:pa@hunter2@127.0.0.1:{port}/mlflow", "its password holds '@'"),
    ("bogus://x", "tracking URI bogus://x: unknown scheme 'bogus'"),
], ids=["http", "postgresql", "password-in-query", "at-in-password", "unknown-scheme"])
def test_unusable_store_is_one_line_quickly(cli, monkeypatch: pytest.MonkeyPatch, uri: str,
                                            expect: str) -> None:
    """MLflow retries a refused connection for ~100 s without a word; here: one line, exit 2,
    in seconds, without the password."""
    port = _closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(port=port))
    start = time.monotonic()
    res = cli("diagnose", "0123456789abcdef0123456789abcdef")
    seconds = time.monotonic() - start
    assert res.exit_code == 2, res.stderr
    assert expect.format(port=port) in res.stderr and "hunter2" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and seconds < 10


def test_file_that_is_not_a_database_is_bad_input_and_left_alone(cli, workdir: Path,
                                                                 monkeypatch) -> None:
    junk = workdir / "notes.db"
    junk.write_bytes(os.urandom(4096))
    before = junk.read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{junk}")
    res = cli("train", "train.epochs=1", "--json")
    assert res.exit_code == 2 and "is not a SQLite database" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.json()["exit_code"] == 2
    assert junk.read_bytes() == before


def test_read_only_store_is_bad_input_and_keeps_its_runs(cli, workdir: Path, monkeypatch
                                                         ) -> None:
    """A store opened read-only (SQLite's mode=ro, as on a read-only share): reading works,
    a new run is refused in one line before any work, and the store is unchanged."""
    from cnnexp.tracking import store

    with store.run("earlier", "kept") as run:
        run.log_metrics({"val_acc": 0.5}, step=1)
    db = workdir / "mlflow.db"
    before = db.read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///file:{db}?mode=ro&uri=true")
    res = cli("train", "train.epochs=1", "data.subset=200", "--json")
    assert res.exit_code == 2, res.stderr
    assert "cannot write to the tracking store" in res.stderr
    assert "attempt to write a readonly database" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == before
    from mlflow import MlflowClient

    kept = MlflowClient(f"sqlite:///{db}").get_run(run.run_id)  # reading still works
    assert kept.info.status == "FINISHED" and kept.data.metrics == {"val_acc": 0.5}


def _limited(max_bytes: int):
    """preexec_fn: the process may not grow any file past `max_bytes` (RLIMIT_FSIZE, as a full
    disk: writes fail with EFBIG instead of killing the process)."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def _cnnexp(workdir: Path, *args: str, max_bytes: int | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnexp.cli", *args], cwd=workdir,
                          env=dict(os.environ), capture_output=True, text=True, timeout=600,
                          preexec_fn=_limited(max_bytes) if max_bytes else None)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_disk_full_while_a_store_is_created_leaves_no_broken_store(cli, workdir: Path) -> None:
    """Cut short, MLflow's migration leaves a half-built database it can never open again
    ('table _alembic_tmp_experiments already exists'); the store is built under another name
    and renamed into place, so nothing is left but a working store next time."""
    res = _cnnexp(workdir, "diagnose", "0123456789ab", "--json", max_bytes=200_000)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "cannot open the tracking store" in res.stderr and "disk I/O error" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert json.loads(res.stdout)["exit_code"] == 2
    assert not (workdir / "mlflow.db").exists()
    again = cli("diagnose", "0123456789ab")
    assert again.exit_code == 2 and "no run '0123456789ab'" in again.stderr  # a working store


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_disk_full_mid_run_is_one_line_and_keeps_what_was_stored(workdir: Path,
                                                                 mlflow_client) -> None:
    """A run that cannot write (files may not grow: its checkpoint, the database) stops with
    one line and exit 1, ends FAILED, and the runs stored before are intact."""
    from cnnexp.tracking import store

    with store.run("earlier", "kept") as run:
        run.log_metrics({"val_acc": 0.5}, step=1)
    size = (workdir / "mlflow.db").stat().st_size
    res = _cnnexp(workdir, "train", "train.epochs=3", "data.subset=200",
                  "train.checkpoint_seconds=0", "--json", max_bytes=size + 4096)
    assert res.returncode == 1, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("failed: run ") and "Traceback" not in res.stderr
    assert json.loads(res.stdout) == {"error": lines[0].removeprefix("failed: "), "exit_code": 1}
    kept = mlflow_client.get_run(run.run_id)
    assert kept.info.status == "FINISHED" and kept.data.metrics == {"val_acc": 0.5}
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert {r.info.status for r in runs} == {"FINISHED", "FAILED"}  # none left RUNNING


def _schema(db: Path) -> tuple[dict, list]:
    """Tables, indexes and their definitions, each as a sorted set of clauses (two migrations
    by MLflow itself list a table's constraints in different orders), and the schema version."""
    import sqlite3

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_master").fetchall()
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    con.close()
    clauses = {name: sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
               for name, sql in rows}
    return clauses, version


def test_new_stores_are_copied_from_a_template_identical_to_a_migrated_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first new store is migrated by MLflow and kept as a template; the next is a copy
    with the Default experiment's artifact location set as MLflow sets it."""
    from mlflow import MlflowClient

    from cnnexp.tracking import connect, template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert template.template_path().parent == tmp_path / "cache" / "cnnexp"
    for name in ("first", "copied", "migrated"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "first")
    connect.open_client(f"sqlite:///{tmp_path / 'first' / 'mlflow.db'}")
    assert template.template_path().is_file()

    monkeypatch.chdir(tmp_path / "copied")
    copied = connect.open_client(f"sqlite:///{tmp_path / 'copied' / 'mlflow.db'}")
    monkeypatch.setenv(template.TEMPLATE_ENV, "off")
    monkeypatch.chdir(tmp_path / "migrated")
    migrated = connect.open_client(f"sqlite:///{tmp_path / 'migrated' / 'mlflow.db'}")

    assert _schema(tmp_path / "copied" / "mlflow.db") == _schema(
        tmp_path / "migrated" / "mlflow.db")
    default = [c.get_experiment("0").artifact_location for c in (copied, migrated)]
    assert default[0].replace("/copied/", "/migrated/") == default[1]
    assert default[0].startswith(str(tmp_path / "copied"))
    exp = copied.create_experiment("x")
    run = copied.create_run(exp)
    copied.log_metric(run.info.run_id, "m", 1.0)
    assert MlflowClient(f"sqlite:///{tmp_path / 'copied' / 'mlflow.db'}").get_run(
        run.info.run_id).data.metrics == {"m": 1.0}


def test_a_lease_whose_pid_was_reused_is_stale() -> None:
    """One liveness rule for search workers and run leases: a live pid with another start
    time is another process (pid reuse), so its lease may be taken."""
    import dataclasses
    import time

    from cnnexp import liveness
    from cnnexp.tracking.lease import Holder

    me = liveness.identity()
    mine = Holder(me["host"], me["pid"], "tok", float(round(time.time())), me["start"], me["boot"],
                  me["pidns"])
    assert mine.alive() and Holder.parse(str(mine)) == mine
    assert not dataclasses.replace(mine, start="1").alive()  # same pid, another process
    assert not dataclasses.replace(mine, beat=time.time() - 3600).alive()  # no heartbeat
    assert dataclasses.replace(mine, host="elsewhere", start="1").alive()  # cannot tell
    old = Holder.parse(f"{me['host']} {me['pid']} tok {time.time():.0f}")  # an older tag
    assert old is not None and old.start is None and old.alive()
    assert Holder.parse("garbage") is None and Holder.parse("h 12 t 1 2") is None


def test_description_tables_keep_a_space_in_each_cell() -> None:
    """MLflow's UI renders description tables without cell padding; a no-break space on each
    side of every cell keeps "0.6638 | 1" from reading "0.66381"."""
    from cnnexp.tracking.store import PAD, fit_note

    md = ("**Head** | not a table\n\n| arm | val_acc |\n|---|:---:|\n| a \\| b | 0.6638 |\n"
          "```\n| code | stays |\n```")
    note = fit_note(md)
    lines = note.split("\n")
    assert lines[0] == "**Head** | not a table"
    assert lines[2] == f"| {PAD}arm{PAD} | {PAD}val_acc{PAD} |"
    assert lines[3] == "|---|:---:|"
    assert lines[4] == f"| {PAD}a \\| b{PAD} | {PAD}0.6638{PAD} |"
    assert lines[-2] == "| code | stays |"
    assert note.replace(PAD, "").replace("|  ", "| ").replace("  |", " |") == md


def test_metrics_are_stored_as_the_table_should_read_them() -> None:
    from cnnexp.tracking.store import readable

    assert readable(float(np.float32(919 / 1000))) == 0.919
    assert readable(0.003758496, "best_val_acc_se") == 0.0038
    assert readable(0.02345678, "test_acc_se") == 0.0235  # as the report's 4 decimals show it
    assert readable(0.00012345, "test_acc_se") == 0.00012
    assert readable(0.003758496, "val_loss") == 0.003758496
    assert math.isnan(readable(math.nan, "test_acc_se"))
