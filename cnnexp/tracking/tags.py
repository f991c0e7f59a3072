"""Every MLflow tag name cnnexp writes or reads, and the kinds of run it records.

One place for the names, so a reader (report, diagnose, ablate --resume) and the writer can
never disagree on a spelling."""

from __future__ import annotations

from enum import Enum

# MLflow's own
PARENT = "mlflow.parentRunId"
NOTE = "mlflow.note.content"  # the run description the UI shows
# Marks experiments as model training, not GenAI: MLflow 3.x UIs that read this tag open the
# runs table. (3.17 decides by its GenAI/"Model training" switch instead, which a link's
# `?workflowType=machine_learning` sets: see query.runs_url.)
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_VALUE = "custom_model_development"

# every cnnexp run
KIND = "cnnexp.kind"
RECIPE = "cnnexp.recipe"
DEVICE = "cnnexp.device"
STATUS = "cnnexp.status"  # the engine's outcome: completed | early_stopped | diverged | stopped
REASON = "cnnexp.reason"
DIAGNOSIS = "diagnosis"  # short on purpose: it is a column in the MLflow runs table
LEASE = "cnnexp.lease"  # which process is training the run now (tracking.lease)

# the final evaluation (train --test / --refit)
TESTED_WEIGHTS = "cnnexp.tested_weights"
TEST_SPLIT = "cnnexp.test_split"
REFIT = "cnnexp.refit"  # trained on train+val, no validation split

# sanity
CHECK = "cnnexp.check"
VERDICT = "cnnexp.verdict"

# search
STUDY = "optuna.study"
STORAGE = "optuna.storage"
STAGE = "cnnexp.stage"
TRIAL = "cnnexp.trial"
STATE = "cnnexp.state"  # the Optuna trial state: complete | pruned | failed | interrupted
RETRY_OF = "cnnexp.retry_of"
EDGE_WARNINGS = "cnnexp.edge_warnings"
CONFIRM_VERDICT = "cnnexp.confirm"  # helps | within noise | hurts | n/a | diverged
FIDELITY = "cnnexp.fidelity"  # carries | does not carry | within noise | too few (a stage run)

# ablation
ABLATION = "cnnexp.ablation"
MODE = "cnnexp.mode"
ARM = "cnnexp.arm"
ARM_HASH = "cnnexp.arm_hash"
SEED = "cnnexp.seed"
RECIPE_HASH = "cnnexp.recipe_hash"
TUNED_LR = "cnnexp.tuned_lr"
TUNED_FROM = "cnnexp.tuned_from"
REUSED_RUNS = "cnnexp.reused_runs"


def component(group: str) -> str:
    """The tag naming the recipe's component of a group: `cnnexp.arch` = `resnet20`."""
    return f"cnnexp.{group}"


class Kind(str, Enum):
    """What a run is. Parents and children: search → stage → trial, ablation → arm → seed,
    sanity → check."""

    TRAIN = "train"
    SANITY = "sanity"
    SANITY_CHECK = "sanity-check"
    LR_FIND = "lr-find"
    SEARCH = "search"
    STAGE = "stage"
    TRIAL = "trial"
    CONFIRM = "confirm"  # the confirming stage's runs: best configuration vs the recipe
    ABLATION = "ablation"
    ARM = "ablation-arm"
    SEED = "ablation-seed"

    def __str__(self) -> str:
        return self.value


# the top-level kinds a report covers, in the order it shows them
REPORTED = (Kind.SANITY, Kind.SEARCH, Kind.ABLATION, Kind.TRAIN)


def kind_of(tags: dict[str, str]) -> str:
    return tags.get(KIND, "")


def kind_filter(kind: Kind | str) -> str:
    """An MLflow search filter selecting runs of one kind."""
    return f"tags.`{KIND}` = '{kind}'"
