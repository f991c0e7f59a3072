"""Edges that must not lose what a run recorded (issue 24 items 15, 20): many classes, long
descriptions."""

from __future__ import annotations

import csv
import io

import pytest
import torch

from cnnexp.diagnose.plots import MAX_MATRIX_CLASSES, confused_pairs_csv, log_confusion
from cnnexp.tracking.store import NOTE_LIMIT, fit_note


class _Texts:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def log_text(self, text: str, path: str) -> None:
        self.files[path] = text


def test_many_classes_log_the_most_confused_pairs_not_a_matrix() -> None:
    n = 10_000
    classes = [f"c{i}" for i in range(n)]
    labels = torch.arange(2000) % n
    logits = torch.zeros(2000, n)
    logits[torch.arange(2000), (labels + 1) % n] = 1.0  # every image mistaken for the next class
    logits[:5, 7] = 2.0  # five more mistakes, all "predicted c7"
    rec = _Texts()
    assert log_confusion(rec, logits, labels, classes, "test") is None
    assert list(rec.files) == ["test/confused_pairs.csv"]
    rows = list(csv.reader(io.StringIO(rec.files["test/confused_pairs.csv"])))
    assert rows[0] == ["true", "predicted", "count"] and len(rows) == 101
    assert len(rec.files["test/confused_pairs.csv"]) < 5000


def test_few_classes_keep_the_full_matrix() -> None:
    classes = ["a", "b", "c"]
    labels = torch.tensor([0, 1, 2, 2])
    logits = torch.eye(3)[[0, 1, 1, 2]]
    rec = _Texts()
    cm = log_confusion(rec, logits, labels, classes, "classification")
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert "classification/confusion_matrix.csv" in rec.files
    assert MAX_MATRIX_CLASSES >= 100
    text = confused_pairs_csv(logits, labels, classes)
    assert text.splitlines()[1:] == ["c,b,1"]


def test_an_overlong_description_loses_its_middle_not_its_results() -> None:
    note = "**recipe**: " + "words " * 3000 + "\n\n| status |\n**Test**: test_acc 0.9"
    kept = fit_note(note)
    assert len(kept) <= NOTE_LIMIT and kept.endswith("**Test**: test_acc 0.9")
    assert kept.startswith("**recipe**: words") and "characters cut" in kept
    assert fit_note("short") == "short"


@pytest.mark.usefixtures("one_thread")
def test_a_long_recipe_description_keeps_the_run_results(cli, mlflow_client) -> None:
    res = cli("train", "description=" + "x" * 9000, "train.epochs=1", "data.subset=200", "--test",
              "--json")
    assert res.exit_code == 0, res.stderr
    note = mlflow_client.get_run(res.json()["run_id"]).data.tags["mlflow.note.content"]
    assert len(note) <= NOTE_LIMIT and "**Test**: test_acc" in note


def test_an_allocation_the_machine_cannot_make_is_one_line_exit_2(capsys) -> None:
    import typer

    from cnnexp.console import guarded
    from cnnexp.errors import memory_failure

    def allocate() -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "not enough memory: you tried to allocate 68719476736 bytes.")

    assert memory_failure(ValueError("x")) is None
    with pytest.raises(typer.Exit) as stop:
        guarded(allocate, json_mode=True)
    assert stop.value.exit_code == 2
    out = capsys.readouterr()
    assert '"exit_code": 2' in out.out and "out of memory" in out.out
    assert "Traceback" not in out.err
