"""One way to record a run: `tracked(kind, name, ...)` against a real SQLite store."""

from __future__ import annotations

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.engine import Callback, fit
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
        from cnnexp.diagnose.rules import diagnose_fit

        calls = []

        def judge(result):
            calls.append(result)
            return diagnose_fit(result)

        result = fit(recipe, data=data, device="cpu", callbacks=child.callbacks(judge))
        # the verdict recorded with the outcome is the one the caller reads: made once
        assert child.judged(result, judge).diagnosis and len(calls) == 1
    run = mlflow_client.get_run(child.run_id)
    tags = run.data.tags
    assert tags[T.DIAGNOSIS] == child.judged(result, judge).diagnosis and len(calls) == 1
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


def test_epoch_metrics_are_all_in_the_store_in_order_when_fit_ends(workdir, mlflow_client
                                                                   ) -> None:
    recipe = load_recipe("digits", ["data.subset=200", "train.epochs=4"])
    data = build_data(recipe)
    seen_at_outcome: list[int] = []

    class Outcome(Callback):  # after the loggers: the history must already be stored
        def on_fit_end(self, state, result) -> None:
            history = mlflow_client.get_metric_history(rec.run_id, "val_acc")
            seen_at_outcome.extend(m.step for m in history)

    with tracked(Kind.TRAIN, "epochs", recipe=recipe, data=data) as rec:
        result = fit(recipe, data=data, device="cpu", callbacks=[*rec.callbacks(), Outcome()])
    assert seen_at_outcome == [1, 2, 3, 4]
    stored = mlflow_client.get_metric_history(rec.run_id, "val_acc")
    assert [m.value for m in sorted(stored, key=lambda m: m.step)] == \
        pytest.approx([h["val_acc"] for h in result.history], rel=1e-6)  # stored at 7 digits


def test_a_store_error_in_the_background_reaches_the_training_thread(workdir, mlflow_client,
                                                                     small) -> None:
    from mlflow.exceptions import MlflowException

    from cnnexp.tracking.record import MetricWriter
    from cnnexp.tracking.store import Run

    recipe, _ = small
    with tracked(Kind.TRAIN, "real", recipe=recipe) as rec:
        pass
    # a run the store refuses to write to: it has ended and been deleted
    mlflow_client.delete_run(rec.run_id)
    writer = MetricWriter(Run(mlflow_client, rec.run_id, rec.experiment_id))
    writer.submit({"val_acc": 0.5}, step=1)
    writer.submit({"val_acc": 0.6}, step=2)  # dropped after the first failure
    with pytest.raises(MlflowException):
        writer.flush()
    writer.flush()  # reported once; nothing pending


def test_the_blocks_own_error_is_reported_not_the_flush(workdir, mlflow_client, small) -> None:
    recipe, _ = small
    with pytest.raises(RuntimeError, match="training broke"), \
            tracked(Kind.TRAIN, "broken", recipe=recipe) as rec:
        rec.writer._error = OSError("disk full")  # as if a background write had failed
        raise RuntimeError("training broke")
    assert mlflow_client.get_run(rec.run_id).info.status == "FAILED"


def test_component_tags_say_what_the_recipe_changed_in_the_component() -> None:
    """A tuned best.yaml keeps its start recipe's components: `aug: none` alone would misread
    a run trained with flips."""
    from cnnexp.recipe import load_recipe
    from cnnexp.tracking import recipe_tags

    tuned = recipe_tags(load_recipe("fashion_mnist_plain", ["aug.flip=true", "opt.lr=0.006"]))
    assert tuned["cnnexp.aug"] == "none + flip=True"
    assert tuned["cnnexp.opt"] == "adam + lr=0.006"
    assert tuned["cnnexp.arch"] == "small_cnn" and tuned["cnnexp.recipe"] == "fashion_mnist_plain"
