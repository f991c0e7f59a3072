"""Optuna storage for cnnexp studies: open it, create each study exactly once, hand a stage's
trials out as tickets, count them exactly, and recover trials whose worker died.

Each stage is its own Optuna study `<study>/<stage>`. Its creator enqueues exactly `trials`
WAITING tickets; workers claim one atomically (WAITING -> RUNNING, which the storage arbitrates),
so any number of workers on any number of machines run exactly the requested count. A trial
that was interrupted or whose worker died is failed and re-queued with the same parameters,
following Optuna's retry convention (system attrs `failed_trial` / `retry_history`)."""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from cnnexp import liveness
from cnnexp.errors import BadInput, CheckFailed, did_you_mean
from cnnexp.redact import redact_url, remember
from cnnexp.search import attrs as A
from cnnexp.search.journal import backend, check_journal

DEFAULT_STORAGE = "cnnexp-optuna.journal"
MAX_RETRY = 3  # re-queues of a trial whose worker died (an interrupt is always re-queued)
CONNECT_TIMEOUT = 10  # seconds: an unreachable database server is an error, not a hang


def open_storage(url: str, heartbeat: int = 30,
                 say: Callable[[str], None] = lambda text: None) -> BaseStorage:
    """A URL (postgresql://, mysql://, sqlite://, redis://) or a journal file path. RDB storages
    get Optuna heartbeats, so trials of a worker that vanished are failed and retried."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    remember(url)  # its password hidden in whatever a driver's error quotes of it
    try:
        if url.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend

            return optuna.storages.JournalStorage(JournalRedisBackend(url))
        if "://" in url:
            import sqlalchemy.exc
            from optuna.storages import RDBStorage

            for attempt in range(5):
                try:
                    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        raw = RDBStorage(url, heartbeat_interval=heartbeat,
                                         grace_period=max(3 * heartbeat, 10),
                                         heartbeat_stale_trial_callback=StaleTrials(),
                                         engine_kwargs=_engine_kwargs(url))
                    return optuna.storages.get_storage(raw)
                except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                    # workers starting at once on an empty database race to create Optuna's
                    # tables; the loser finds them made on its next try
                    if attempt == 4:
                        raise
                    time.sleep(0.5 + random.random())
        path = Path(url).expanduser()
        if not path.parent.is_dir():
            raise BadInput(f"--storage {url}: folder {path.parent} does not exist")
        check_journal(path, say)
        return optuna.storages.JournalStorage(backend(path))
    except BadInput:
        raise
    except Exception as exc:  # bad URL, missing driver, unreachable server
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ModuleNotFoundError) and url.startswith("postgresql"):
            first += " (pip install 'cnnexp[postgres]', i.e. psycopg[binary])"
        raise BadInput(redact_url(f"cannot open --storage {url}: {first}")) from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Fail fast on an unreachable server (the drivers' default is to wait forever); drop
    pooled connections that a database restart closed."""
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return kwargs


class StaleTrials:
    """Optuna's heartbeat-stale callback (RDB storages): a trial whose worker stopped beating
    (killed, or its machine went away) is re-queued with the same parameters, like any dead
    worker's trial, and remembered so that the reaper can end its MLflow run."""

    def __init__(self) -> None:
        self.found: list[FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.found.append(trial)
        if len(trial.system_attrs.get("retry_history", [])) < MAX_RETRY:
            Stage(study._storage, study).requeue(trial, "worker died (no heartbeat)")


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def require_study(storage: BaseStorage, name: str) -> None:
    """--resume: the study must exist (closest existing names otherwise)."""
    names = study_names(storage)
    if name not in names:
        roots = sorted({n.split("/")[0] for n in names})
        raise BadInput(f"--resume: no study '{name}' in this storage{did_you_mean(name, roots)}")


def _create_once(storage: BaseStorage, name: str, direction: str) -> bool:
    try:
        optuna.create_study(storage=storage, study_name=name, direction=direction)
        return True
    except optuna.exceptions.DuplicatedStudyError:
        return False


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block is done (short bookkeeping that must not be cut in
    half: creating a stage, marking an interrupted trial); then raise KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {sig: signal.signal(sig, lambda signum, frame: got.append(signum))
           for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if got and any(old[sig] not in (signal.SIG_IGN, None) for sig in got):
        raise KeyboardInterrupt


def ensure_study(storage: BaseStorage, name: str, direction: str,
                 setup: Callable[[optuna.Study], None], timeout: float = 120.0
                 ) -> tuple[optuna.Study, bool]:
    """Load the study, creating it first if nobody has: exactly one process (across machines)
    runs `setup` (attrs, tickets), the others wait until it marks the study ready."""
    for _ in range(3):
        created = _create_once(storage, name, direction)
        study = optuna.load_study(study_name=name, storage=storage)
        if created:
            with deferred_interrupts():
                study.set_user_attr(A.SETUP_BY, worker_identity())
                setup(study)
                study.set_user_attr(A.READY, True)
            return study, True
        if _wait_ready(study, timeout):
            return study, False
        # its creator died during set-up (this host can tell): the half-made study holds no
        # trial results, so it is removed and made again
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=name, storage=storage)
    raise CheckFailed(f"study '{name}' was left half-created (its creator stopped during "
                      f"set-up); delete it (`optuna delete-study --study-name '{name}' "
                      "--storage ...`) and run again")


def _wait_ready(study: optuna.Study, timeout: float) -> bool:
    """True once the creator marks the study ready; False when the creator is known dead.
    A creator elsewhere that takes longer than `timeout` is an error."""
    deadline = time.monotonic() + timeout
    while not study.user_attrs.get(A.READY):
        creator = study.user_attrs.get(A.SETUP_BY)
        if creator and not worker_alive(creator):
            return False
        if time.monotonic() > deadline:
            raise CheckFailed(f"study '{study.study_name}' is still being set up by another "
                              f"process after {timeout:.0f} s; try again later")
        time.sleep(0.2)
    return True


def worker_identity() -> dict[str, Any]:
    return liveness.identity()


def worker_alive(w: dict[str, Any]) -> bool:
    """False only when we can tell the worker is gone (cnnexp.liveness); workers we cannot
    see are judged by heartbeats instead."""
    return liveness.alive(w)


@dataclass
class Counts:
    requested: int = 0
    waiting: int = 0
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    retried: int = 0  # failed trials that were re-queued (not counted as failed)
    skipped: int = 0  # tickets never started: the --budget deadline came first

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    @property
    def done(self) -> bool:
        return self.waiting == 0 and self.running == 0


def superseded(trials: list[FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


BUDGET_REASON = "budget"  # a ticket the --budget deadline left unstarted


def skipped(t: FrozenTrial) -> bool:
    """A ticket the --budget deadline left unstarted: ended FAIL (Optuna has no other end for
    a trial never run), counted and shown as skipped."""
    return t.state == TrialState.FAIL and str(t.user_attrs.get(A.REASON, "")).startswith(
        BUDGET_REASON)


def state_word(t: FrozenTrial) -> str:
    """The trial's state as printed and in trials.csv: complete, pruned, fail, skipped, ..."""
    return "skipped" if skipped(t) else t.state.name.lower()


def counts(trials: list[FrozenTrial]) -> Counts:
    """Exact per-stage counts: a failed trial that was re-queued counts once, as its retry."""
    gone = superseded(trials)
    c = Counts(requested=sum(1 for t in trials if A.TICKET in t.user_attrs
                             and not t.system_attrs.get("retry_history")))
    for t in trials:
        if t.number in gone:
            c.retried += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.COMPLETE:
            c.complete += 1
        elif t.state == TrialState.PRUNED:
            c.pruned += 1
        elif skipped(t):
            c.skipped += 1
        elif t.state == TrialState.FAIL:
            c.failed += 1
    return c


class Stage:
    """One stage study: claim tickets, re-queue, reap trials of dead workers."""

    def __init__(self, storage: BaseStorage, study: optuna.Study) -> None:
        self.storage, self.study = storage, study
        self.study_id = storage.get_study_id_from_name(study.study_name)

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False,
                                           states=states or None)

    def claim(self) -> int | None:
        """Atomically take a WAITING ticket; None when none is left."""
        for t in self.trials(TrialState.WAITING):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
            try:
                if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    self.storage.set_trial_user_attr(trial_id, A.WORKER, worker_identity())
                    beat = getattr(self.storage, "record_heartbeat", None)
                    if beat is not None and self.storage.get_heartbeat_interval():
                        beat(trial_id)  # a trial without any beat is never judged stale
                    return trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    def skip_waiting(self, why: str) -> int:
        """End every ticket nobody has started (the deadline came first): failed with reason
        `budget: ...`, not re-queued, counted as skipped. Returns how many."""
        n = 0
        while (trial_id := self.claim()) is not None:
            if self.fail(self.storage.get_trial(trial_id), f"{BUDGET_REASON}: {why}",
                         retry=False):
                n += 1
        return n

    def requeue(self, t: FrozenTrial, reason: str) -> None:
        """A WAITING copy of `t` (same params) that the next free worker picks up."""
        history = [*t.system_attrs.get("retry_history", []), t.number]
        user = {k: v for k, v in t.user_attrs.items() if k in (A.TICKET, A.PROMOTED_FROM)}
        self.study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=t.params, distributions=t.distributions,
            user_attrs={**user, A.RETRY_REASON: reason},
            system_attrs={**t.system_attrs, "failed_trial": history[0], "retry_history": history}))

    def fail(self, t: FrozenTrial, reason: str, retry: bool) -> bool:
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
        try:  # attrs first: a finished trial can no longer be updated
            self.storage.set_trial_user_attr(trial_id, A.REASON, reason)
            if not self.storage.set_trial_state_values(trial_id, TrialState.FAIL):
                return False
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        if retry:
            self.requeue(self.storage.get_trial(trial_id), reason)
        return True

    def reap(self) -> list[FrozenTrial]:
        """Fail (and re-queue) RUNNING trials whose worker is gone: same-host dead pids for every
        storage, Optuna heartbeats for RDB storages. Returns the reaped trials."""
        stale = getattr(self.storage, "get_heartbeat_stale_trial_callback", lambda: None)()
        if isinstance(stale, StaleTrials):
            stale.found.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        reaped = list(stale.found) if isinstance(stale, StaleTrials) else []
        for t in self.trials(TrialState.RUNNING):
            w = t.user_attrs.get(A.WORKER)
            orphan = w is None and t.datetime_start is not None and \
                (datetime.now() - t.datetime_start).total_seconds() > 120
            if (orphan or (w is not None and not worker_alive(w))) and self.fail(
                    t, "worker died", retry=len(t.system_attrs.get("retry_history", [])) < MAX_RETRY):
                reaped.append(t)
        return reaped


def add_tickets(study: optuna.Study, n: int,
                promoted: Sequence[tuple[int, dict[str, Any]]] = ()) -> None:
    """Exactly n WAITING tickets; the first ones carry the parameters of `promoted`
    (previous-stage trial number, params) and the rest are sampled when claimed."""
    for i in range(n):
        if i < len(promoted):
            number, params = promoted[i]
            study.enqueue_trial(params, user_attrs={A.TICKET: i, A.PROMOTED_FROM: number})
        else:
            study.enqueue_trial({}, user_attrs={A.TICKET: i})


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Optuna's heartbeat for a trial run outside `study.optimize` (RDB storages only)."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried next interval
                storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
