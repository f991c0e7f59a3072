"""The driver's view of a running search, read from the storage: stage headers (with narrowed
ranges), one line per finished trial, and a progress bar per stage. Reading the storage rather
than listening to workers means the same output whether trials run in this process, in spawned
workers, or on other machines."""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage

from cnnexp.search import attrs as A
from cnnexp.search.config import Plan
from cnnexp.search.stages import narrowing_text, stage_study
from cnnexp.search.storage import counts, state_word


class Monitor:
    def __init__(self, storage: BaseStorage, plan: Plan, console: Any, *, lines: bool,
                 bar: bool) -> None:
        self.storage, self.plan, self.console = storage, plan, console
        self.lines = lines
        self.seen: set[tuple[str, int]] = set()
        self.headed: set[str] = set()
        self.tasks: dict[str, Any] = {}
        self.progress = None
        if bar:
            from cnnexp.console import progress_bar

            self.progress = progress_bar(console=console)
            self.progress.start()
        self._first = True

    def say(self, text: str) -> None:
        if self.lines:
            self.console.print(text, highlight=False, soft_wrap=True)

    def refresh(self) -> None:
        for sp in self.plan.stages:
            try:
                study_id = self.storage.get_study_id_from_name(stage_study(self.plan, sp.name))
            except KeyError:
                break
            attrs = self.storage.get_study_user_attrs(study_id)
            if not attrs.get(A.READY):
                break
            trials = self.storage.get_all_trials(study_id, deepcopy=False)
            c = counts(trials)
            if sp.name not in self.headed:
                self.headed.add(sp.name)
                self.say(narrowing_text(attrs, markdown=False))
                if self._first and c.finished:
                    self.say(f"  resuming: {c.finished} of {c.requested} trials already done")
            for t in trials:
                if t.state.is_finished() and (sp.name, t.number) not in self.seen:
                    self.seen.add((sp.name, t.number))
                    if not self._first:  # a resumed study's old trials: summarised above
                        self._line(t)
            self._bar(sp.name, c)
        self._first = False

    def _line(self, t: Any) -> None:
        name = t.user_attrs.get(A.NAME, f"trial {t.number}")
        state = state_word(t)
        value = f"{self.plan.metric}={t.value:.4f}" if t.value is not None else ""
        secs = t.user_attrs.get(A.SECONDS)
        reason = t.user_attrs.get(A.REASON, "")
        tail = f" ({reason})" if state != "complete" and reason else ""
        time_s = f" {secs:.1f}s" if isinstance(secs, (int, float)) else ""
        self.say(f"  {name}  [{'green' if state == 'complete' else 'yellow'}]{state}[/]"
                 f"{' ' + value if value else ''}{time_s}{tail}")

    def _bar(self, stage: str, c: Any) -> None:
        if self.progress is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=c.requested, info="")
        info = f"{c.complete} ok {c.pruned} pruned {c.failed} failed" + \
            (f" {c.skipped} skipped (budget)" if c.skipped else "")
        self.progress.update(self.tasks[stage], completed=c.finished, total=c.requested, info=info)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

