"""One way to record a run: `tracked(kind, name, ...)` against a real SQLite store."""

from __future__ import annotations

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.engine import fit
from cnnexp.recipe import load_recipe
from cnnexp.tracking import Kind, tracked
from cnnexp.tracking import tags as T

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    recipe = load_recipe("digits", ["data.subset=200", "train.epochs=1"])
    return recipe, build_data(recipe)


def test_disabled_recording_does_nothing(workdir, mlflow_client, small) -> None:
    recipe, data = small
    with tracked(Kind.TRAIN, "off", enabled=False, recipe=recipe, data=data) as rec:
        assert not rec.active and rec.run_id is None and rec.callbacks() == []
        rec.log_metrics({"x": 1.0})
        rec.set_tags({"a": "b"})
        rec.fail()
    assert mlflow_client.search_experiments(filter_string="name = 'digits'") == []


def test_tracked_run_carries_kind_recipe_device_and_outcome(workdir, mlflow_client, small
                                                             ) -> None:
    recipe, data = small
    with tracked(Kind.TRAIN, "parent", recipe=recipe, data=data,
                 device=torch.device("cpu")) as parent, \
            tracked(Kind.TRIAL, "child", parent=parent, recipe=recipe,
                    tags={T.STAGE: "coarse"}) as child:
        fit(recipe, data=data, device="cpu", callbacks=child.callbacks())
    run = mlflow_client.get_run(child.run_id)
    tags = run.data.tags
    assert tags[T.KIND] == "trial" and tags[T.PARENT] == parent.run_id
    assert tags[T.component("arch")] == "small_cnn" and tags[T.STAGE] == "coarse"
    assert tags[T.STATUS] == "completed" and tags[T.DIAGNOSIS]
    assert {"val_acc", "best_val_acc", "seconds", "params"} <= set(run.data.metrics)
    assert run.data.params["opt.lr"] == str(recipe.opt.lr)
    assert run.info.status == "FINISHED"
    assert mlflow_client.get_run(parent.run_id).data.tags[T.DEVICE] == "cpu"
    assert "recipe.yaml" in {a.path for a in mlflow_client.list_artifacts(child.run_id)}


def test_diverged_fit_ends_failed(workdir, mlflow_client, small) -> None:
    _, data = small
    blown = load_recipe("digits", ["data.subset=200", "train.epochs=2", "opt.lr=1e6"])
    with tracked(Kind.SEED, "diverges", recipe=blown) as rec:
        result = fit(blown, data=data, device="cpu", callbacks=rec.callbacks())
    assert result.status == "diverged"
    run = mlflow_client.get_run(rec.run_id)
    assert run.info.status == "FAILED" and run.data.tags[T.STATUS] == "diverged"


def test_exception_ends_failed_and_interrupt_killed(workdir, mlflow_client, small) -> None:
    recipe, _ = small
    with pytest.raises(RuntimeError), tracked(Kind.TRAIN, "boom", recipe=recipe) as rec:
        raise RuntimeError("boom")
    assert mlflow_client.get_run(rec.run_id).info.status == "FAILED"
    with pytest.raises(KeyboardInterrupt), tracked(Kind.TRAIN, "ctrl-c", recipe=recipe) as rec:
        raise KeyboardInterrupt
    assert mlflow_client.get_run(rec.run_id).info.status == "KILLED"
