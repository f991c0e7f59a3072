"""Every case of the bad-input catalogue: exit 2, one line naming the problem, no output on
stdout, no MLflow run stored; and the catalogue is what docs/reliability.md lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import CASES, Case
from tests.conftest import CliResult, run_case

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


def assert_bad_input(case: Case, res: CliResult, tmp_path: Path) -> None:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert case.expect in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert res.stdout == ""
    db = tmp_path / "mlflow.db"
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_reliability_doc_lists_every_case() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    missing = [c.id for c in CASES if f"(`{c.id}`)" not in doc]
    assert not missing, f"regenerate docs/reliability.md (python -m tests.bad_inputs): {missing}"
