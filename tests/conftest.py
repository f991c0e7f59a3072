"""Shared fixtures: a real temporary MLflow store (SQLite) and an in-process CLI runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with its own MLflow SQLite store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # no background figure processes outliving a test's store (tests/diagnose checks them)
    monkeypatch.setenv("CNNEXP_FIGURES", "on-demand")
    return tmp_path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture
def cli(workdir: Path):
    """Run `cnnexp ARGS...` in-process; returns exit code, stdout and stderr separately."""
    from cnnexp.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> CliResult:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a CPU shared with other jobs: one intra-op thread is as fast alone and
    far faster when other processes compete for the cores (use via pytestmark)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mlflow_client(workdir: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


JSON_COMMANDS_EXCEPT = ("recipes", "ui")  # run_case adds --json to every other command


def run_case(case, workdir: Path) -> CliResult:
    """Run one bad-input case in `workdir` (its files written first) with a fresh store (or the
    case's own environment), with --json where the command takes it."""
    import os

    from cnnexp.cli import app

    for rel, content in case.files.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"} | {
        k: v.replace("{dir}", str(workdir)) for k, v in case.env.items()}
    old_cwd, old_env = Path.cwd(), {k: os.environ.get(k) for k in env}
    os.chdir(workdir)
    os.environ.update(env)
    args = [*case.args, "--json"] if case.args[0] not in JSON_COMMANDS_EXCEPT else list(case.args)
    try:
        result = CliRunner().invoke(app, args, catch_exceptions=False)
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return CliResult(result.exit_code, result.stdout, result.stderr)
