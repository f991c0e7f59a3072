"""A search worker: a long-lived loop that claims tickets stage by stage and runs them. The
dataset is built once per worker and reused by every trial; `worker_main` is the entry point of
the processes `--workers N` spawns."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from cnnexp import tracking
from cnnexp.engine import Callback
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan
from cnnexp.search.stages import ensure_stage, stage_space
from cnnexp.search.storage import Stage, counts, deferred_interrupts, open_storage
from cnnexp.search.trial import TrialContext, run_trial
from cnnexp.tracking import tags as T


@dataclass
class WorkerArgs:
    """Picklable: what a spawned worker process receives."""

    plan: Plan
    index: int = 0
    device: str = "auto"
    threads: int | None = None
    heartbeat: int = 30
    track: bool = True
    poll: float = 0.5


class Worker:
    def __init__(self, args: WorkerArgs, storage: Any = None, callbacks: Sequence[Callback] = (),
                 on_trial: Callable[[], None] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        from cnnexp.engine.device import resolve_device

        self.args, self.plan = args, args.plan
        self._busy = 0  # consecutive trials re-queued because the store was locked
        self.storage = storage or open_storage(self.plan.storage, args.heartbeat)
        self.device = resolve_device(args.device)
        self.callbacks, self.on_trial = callbacks, on_trial or (lambda: None)
        self.say = say or (lambda text: print(text, file=sys.stderr))
        self._data: dict[str, Any] = {}

    def data(self, recipe: Any) -> Any:
        """Built once per distinct data section and kept on the device for every later trial."""
        key = recipe.data.model_dump_json()
        if key not in self._data:
            from cnnexp.data import build_data

            self._data[key] = build_data(recipe).to(self.device)
        return self._data[key]

    def parent(self) -> tracking.Run | None:
        if not self.args.track:
            return None
        import optuna

        root = optuna.load_study(study_name=self.plan.study, storage=self.storage)
        return tracking.attach(root.user_attrs.get(A.RUN_ID))

    def run(self) -> None:
        parent = self.parent()
        for i, stage_plan in enumerate(self.plan.stages):
            if i and not self._fits(stage_plan) and not self._exists(stage_plan):
                self.say(f"budget: stage {stage_plan.name} not started (the deadline is "
                         "nearer than one of its trials)")
                return
            store, stage_run = ensure_stage(self.storage, self.plan, stage_plan, parent, self.say)
            ctx = TrialContext(self.plan, stage_plan, store, stage_space(store.study), stage_run,
                               self.device, self.data, self.args.index, self.callbacks)
            self._drain(ctx)
            if stage_run is not None and tracking.run_status(stage_run) == "RUNNING":
                tracking.end_run(stage_run, "FINISHED")

    def _drain(self, ctx: TrialContext) -> None:
        """Run tickets until none is left, then wait for other workers' running trials: the next
        stage's ranges need all of this stage's results."""
        store = ctx.store
        _end_requeued_runs(store)
        while True:
            for t in store.reap():  # whoever reaps a dead worker's trial closes its run
                tracking.end_if_running(t.user_attrs.get(A.RUN_ID), "FAILED", {
                    T.STATE: "failed", T.REASON: "worker died"})
                self.on_trial()
            if not self._fits(ctx.stage):
                skipped = store.skip_waiting("not started, the deadline came first")
                if skipped:
                    self.say(f"budget: {skipped} trial(s) of {ctx.stage.name} skipped (its "
                             "share of the budget is spent: the later stages keep theirs)")
                    self.on_trial()
            trial_id = store.claim()
            if trial_id is None:
                if counts(store.trials()).done:
                    return
                time.sleep(self.args.poll)
                continue
            self._one(ctx, trial_id)
            self.on_trial()

    def _fits(self, stage: Any) -> bool:
        """With a budget: can one more trial of `stage` end before the stage's deadline (the
        search's, less the planned time of the stages after it and the confirming stage)?"""
        budget = self.plan.deadline
        if not budget:
            return True
        end = budget.get("stage_ends", {}).get(stage.name, budget["deadline"])
        return end - time.time() >= budget["trial_seconds"].get(stage.name, 0.0)

    def _exists(self, stage: Any) -> bool:
        """A stage another worker (or an earlier run) already created is finished, not
        skipped: its study must be complete for the results."""
        try:
            self.storage.get_study_id_from_name(f"{self.plan.study}/{stage.name}")
        except KeyError:
            return False
        return True

    def _one(self, ctx: TrialContext, trial_id: int) -> None:
        try:
            run_trial(ctx, trial_id)
            self._busy = 0
        except KeyboardInterrupt:
            _settle(ctx.store, trial_id, "interrupted", retry=True)
            raise
        except Exception as exc:  # e.g. a sampled combination the recipe schema rejects
            from cnnexp.errors import StoreFailed, environment_failure

            env = environment_failure(exc)
            if env is not None and _transient(env) and self._busy < BUSY_RETRIES:
                # another process held the SQLite store's write lock too long (an MLflow UI,
                # `cnnexp report`, a second search): the trial waits again and the search goes on
                self._busy += 1
                with contextlib.suppress(Exception):
                    _settle(ctx.store, trial_id, f"environment: {env}", retry=True)
                    _end_requeued_runs(ctx.store)
                self.say(f"trial of {ctx.stage.name} re-queued: {env} (the tracking store "
                         f"was busy; retry {self._busy} of {BUSY_RETRIES})")
                time.sleep(self._busy)
                return
            if env is not None:
                # the machine's fault (disk full, store gone), not the configuration's: the
                # trial goes back in the queue and the search stops, to go on with --resume
                # once the cause is fixed; its MLflow run is ended then (_end_requeued_runs)
                with contextlib.suppress(Exception):
                    _settle(ctx.store, trial_id, f"environment: {env}", retry=True)
                raise StoreFailed(f"trial of {ctx.stage.name} stopped: {env}; it is re-queued: "
                                  "fix the cause, then rerun with --resume") from None
            reason = f"{type(exc).__name__}: {exc}"[:500]
            _settle(ctx.store, trial_id, reason, retry=False)
            self.say(f"trial {ctx.store.storage.get_trial(trial_id).number} of "
                     f"{ctx.stage.name} failed: {reason}")


def _end_requeued_runs(store: Stage) -> None:
    """MLflow runs of trials failed by the environment and re-queued, left RUNNING because the
    store could not take their end then: ended FAILED now (their retry has a run of its own)."""
    for t in store.trials(TrialState.FAIL):
        if str(t.user_attrs.get(A.RETRY_REASON, "")).startswith("environment:") or \
                str(t.user_attrs.get(A.REASON, "")).startswith("environment:"):
            tracking.end_if_running(t.user_attrs.get(A.RUN_ID), "FAILED", {
                T.STATE: "failed", T.REASON: t.user_attrs.get(A.REASON, "environment")})


BUSY_RETRIES = 3  # consecutive trials a locked store may send back before the search stops


def _transient(reason: str) -> bool:
    """SQLite's busy error: a lock another connection held past the timeout, gone on retry."""
    return "database is locked" in reason or "database table is locked" in reason


def _settle(store: Stage, trial_id: int, reason: str, retry: bool) -> None:
    """A trial that ended by an exception before it was told: fail it (and maybe re-queue)."""
    with deferred_interrupts():
        t = store.storage.get_trial(trial_id)
        if t.state == TrialState.RUNNING:
            store.fail(t, reason, retry)



def _terminate(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def worker_main(args: WorkerArgs) -> None:
    """Entry point of a spawned worker. The driver stops workers with SIGTERM (handled like
    Ctrl-C: the running trial is marked and re-queued); a terminal's Ctrl-C goes to the driver
    only, so the two never race."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    from cnnexp.console import quiet_libraries
    from cnnexp.errors import BadInput, CheckFailed

    quiet_libraries()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        Worker(args).run()
    except KeyboardInterrupt:
        sys.exit(130)
    except (BadInput, CheckFailed) as exc:
        print(f"worker {args.index}: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, BadInput) else 1)
