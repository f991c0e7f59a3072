"""Every case of the bad-input catalogue: exit 2, one line naming the problem, no output on
stdout, no MLflow run stored; and the catalogue is what docs/reliability.md lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import CASES, Case
from tests.conftest import JSON_COMMANDS_EXCEPT, CliResult, run_case

ROOT = Path(__file__).resolve().parent.parent


def test_catalogue_is_large_and_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path: Path) -> None:
    assert_bad_input(case, run_case(case, tmp_path), tmp_path)


def test_download_offline_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data.download=true without a network: one line and exit 2, not a URLError traceback."""
    import urllib.error
    import urllib.request

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    case = Case("download-offline", "data.download=true without a network",
                ("train", "cifar10_resnet20", "data.root=dl", "data.download=true"),
                "cannot download cifar10 into 'dl' ([Errno -3] Temporary failure in name "
                "resolution): check the network, or put the files there")
    assert_bad_input(case, run_case(case, tmp_path), tmp_path)


MAX_LINE = 400  # a message quotes values cut short: a 600-character name must not fill it


def assert_bad_input(case: Case, res: CliResult, tmp_path: Path) -> None:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert case.expect in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert len(lines[0]) <= MAX_LINE, len(lines[0])
    assert "hunter2" not in res.stderr + res.stdout  # the cases' password
    if case.args[0] in JSON_COMMANDS_EXCEPT:
        assert res.stdout == ""
    else:  # --json: the error is the one object on stdout
        assert res.stdout.count("\n") == 1
        assert res.json() == {"error": lines[0].removeprefix("error: "), "exit_code": 2}
    db = tmp_path / "mlflow.db"
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_reliability_doc_lists_every_case() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    missing = [c.id for c in CASES if f"(`{c.id}`)" not in doc]
    assert not missing, f"regenerate docs/reliability.md (python -m tests.bad_inputs): {missing}"


def test_report_on_runs_whose_parents_loop_ends(tmp_path: Path) -> None:
    """A store edited by hand (or by a buggy tool) where a run names itself, or its own child,
    as parent: `cnnexp report RUN_ID` ends (it looped forever)."""
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(uri)
    exp = c.create_experiment("loops")
    me, a, b = (c.create_run(exp, run_name=n, tags={"cnnexp.kind": "train"}).info.run_id
                for n in ("me", "a", "b"))
    for child, parent in ((me, me), (a, b), (b, a)):
        c.set_tag(child, "mlflow.parentRunId", parent)
        c.set_terminated(child)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    for run_id in (me, a):
        res = subprocess.run([sys.executable, "-m", "cnnexp.cli", "report", run_id, "--out",
                              "r.html", "--json"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=180)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.count("\n") == 1 and '"subject": "train ' in res.stdout
