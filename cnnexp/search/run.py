"""`cnnexp search` as a function: check everything, open the study, run the workers (in this
process, or N spawned ones), then report: tables, CSV, plots, best recipe, JSON."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnexp import tracking
from cnnexp.engine import Callback
from cnnexp.errors import BadInput, CheckFailed
from cnnexp.files import check_out_folder, replaced
from cnnexp.redact import redact_url
from cnnexp.search.config import Plan, build_plan
from cnnexp.search.confirm import confirm_once
from cnnexp.search.logged import log_search, mark_interrupted
from cnnexp.search.monitor import Monitor
from cnnexp.search.processes import run_processes, sigterm_as_interrupt
from cnnexp.search.results import (
    best_of,
    collect,
    rows,
    write_best_recipe,
)
from cnnexp.search.stages import ensure_root
from cnnexp.search.storage import DEFAULT_STORAGE, counts, open_storage, require_study
from cnnexp.search.summary import result_json
from cnnexp.search.worker import Worker, WorkerArgs

if TYPE_CHECKING:
    from cnnexp.search.final_budget import FinalPlan

@dataclass
class SearchOptions:
    stages: str | None = None
    trials: str | None = None
    study: str | None = None
    storage: str | None = None
    workers: int = 1
    devices: str | None = None
    resume: bool = False
    heartbeat: int = 30
    out: str | None = None
    track: bool = True
    confirm: bool = True  # the confirming stage after the last one (see search/confirm.py)
    confirm_seeds: int | str | None = None  # N or "auto"; default: search.confirm.seeds
    test: bool = False  # evaluate the confirmed winner on the held-out test split
    budget: str | None = None  # wall-clock budget (`30m`); default: the recipe's search.budget
    # the final run's time (`20m`): best.yaml's epochs; default: search.final_budget
    final_budget: str | None = None


MAX_WORKERS = 256  # worker processes on one host: more is a typo


def out_dir(opts: SearchOptions, study: str) -> Path:
    return Path(opts.out or Path("outputs") / "search" / study)


def check_out(path: Path) -> None:
    check_out_folder(path, "trials.csv, best.yaml and the plots")


MAX_STUDY = 120  # characters of a study name (a folder name and MLflow experiment name)


def study_stem(recipe_name: str) -> str:
    """A valid study-name start from any recipe name (`my recipe` -> `my-recipe`)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe_name).strip("-.") or "search"
    return stem[:MAX_STUDY - 9]


def parse_confirm_seeds(value: int | str | None) -> int | str | None:
    """--confirm-seeds: a whole number from 1 to 100, or `auto`."""
    if value is None or value == "auto":
        return value
    text = str(value).strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 100:
        return int(text)
    raise BadInput(f"--confirm-seeds must be a whole number from 1 to 100 or 'auto', "
                   f"got {value!r}")


def prepare(ref: str | None, overrides: Sequence[str], opts: SearchOptions
            ) -> tuple[Plan, list[str]]:
    """All the checks that must fail (exit 2) before any study or run exists."""
    plan = build_plan(ref, list(overrides), stages=opts.stages, trials=opts.trials)
    if opts.workers < 1:
        raise BadInput(f"--workers must be at least 1, got {opts.workers}")
    if opts.workers > MAX_WORKERS:
        raise BadInput(f"--workers must be at most {MAX_WORKERS}, got {opts.workers}")
    opts.confirm_seeds = parse_confirm_seeds(opts.confirm_seeds)
    if opts.test and not opts.confirm:
        raise BadInput("--test evaluates the confirmed winner: it needs the confirming stage "
                       "(drop --no-confirm)")
    if opts.final_budget or plan.final_budget:  # a typo fails now, not after the search
        from cnnexp.search.budget import parse_budget

        parse_budget(opts.final_budget or plan.final_budget or "",
                     "--final-budget" if opts.final_budget else "search.final_budget")
    if opts.heartbeat < 1:
        raise BadInput(f"--heartbeat must be at least 1 second, got {opts.heartbeat}")
    from cnnexp.engine.device import resolve_device

    devices = [d.strip() for d in (opts.devices or "auto").split(",") if d.strip()] or ["auto"]
    for d in devices:
        resolve_device(d)
    plan.study = opts.study or f"{study_stem(plan.recipe_name)}-{plan.fingerprint}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", plan.study):
        raise BadInput(f"--study '{plan.study}': use letters, digits, '_', '-', '.' (no '/')")
    if len(plan.study) > MAX_STUDY:  # it names the output folder: file systems stop at 255
        raise BadInput(f"--study is {len(plan.study)} characters long; at most {MAX_STUDY}")
    plan.storage = opts.storage or DEFAULT_STORAGE
    check_out(out_dir(opts, plan.study))
    if opts.test:
        from cnnexp.data import build_data
        from cnnexp.recipe import load_recipe

        build_data(load_recipe(ref, list(overrides))).test()  # no test split: say so now
    return plan, devices


def run_search(ref: str | None, overrides: Sequence[str], opts: SearchOptions, *,
               console: Any = None, lines: bool = True, bar: bool = False,
               callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Run (or resume) a search and return the JSON result. `callbacks` are extra engine
    callbacks for every trial (in-process workers only)."""
    from cnnexp.recipe import load_recipe, to_yaml

    began = time.time()
    plan, devices = prepare(ref, overrides, opts)
    console = console or _stderr()
    budget = plan_budget(ref, overrides, plan, opts, devices[0], began, console) \
        if (opts.budget or plan.budget) else None
    storage = open_storage(plan.storage, opts.heartbeat,
                           say=lambda text: console.print(text, soft_wrap=True))
    if opts.workers > 1 and plan.storage.startswith("sqlite"):
        console_warn = f"--storage {redact_url(plan.storage)}: SQLite is not safe for parallel workers; " \
                       "use the default journal file or a server database"
        (console or _stderr()).print(f"[yellow]warning:[/] {console_warn}", soft_wrap=True)
    if opts.resume:
        require_study(storage, plan.study)
    _, parent = ensure_root(storage, plan, to_yaml(load_recipe(ref, overrides)), opts.track)
    monitor = Monitor(storage, plan, console, lines=lines, bar=bar)
    monitor.refresh()
    start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            if opts.workers == 1:
                args = WorkerArgs(plan, 0, devices[0], None, opts.heartbeat, opts.track)
                Worker(args, storage, callbacks, on_trial=monitor.refresh,
                       say=monitor.say).run()
            else:
                run_processes(plan, opts, devices, monitor)
    except KeyboardInterrupt:
        monitor.close()
        mark_interrupted(storage, plan, parent)
        raise
    monitor.refresh()
    monitor.close()
    try:
        with sigterm_as_interrupt():
            result = finish(storage, plan, parent, opts, start, devices[0], say=monitor.say,
                            callbacks=callbacks)
    except KeyboardInterrupt:
        mark_interrupted(storage, plan, parent)
        raise
    if budget is not None:
        used = time.time() - began
        result["budget"] = {**budget.to_dict(), "used_seconds": round(used, 1),
                            "within": used <= budget.budget}
        say = f"budget: {used / 60:.1f} of {budget.budget / 60:.1f} min used"
        console.print(say if used <= budget.budget else f"[yellow]{say}[/]", highlight=False)
    return result


def final_plan(plan: Plan, opts: SearchOptions, best: tuple, confirmed: dict[str, Any] | None,
               device: str) -> FinalPlan | None:
    """The final run's epochs when a final budget is set (search/final_budget.py)."""
    text = opts.final_budget or plan.final_budget
    if not text:
        return None
    from cnnexp.search import budget as B
    from cnnexp.search.final_budget import plan_final
    from cnnexp.search.results import best_recipe

    def probe() -> float:
        from cnnexp.engine.device import resolve_device

        recipe = best_recipe(plan, dict(best[1].params))
        rates = B.measure(recipe, resolve_device(device))
        return rates.run_seconds(1, rates.n_train, rates.views) - B.TRIAL_OVERHEAD

    return plan_final(B.parse_budget(text, "--final-budget"), confirmed, probe)


def plan_budget(ref: str | None, overrides: Sequence[str], plan: Plan, opts: SearchOptions,
                device: str, began: float, console: Any) -> Any:
    """Measure this machine, fit the trial counts and confirm seeds to the budget, print the
    plan, and give the workers the deadline."""
    from cnnexp.engine.device import resolve_device
    from cnnexp.recipe import load_recipe
    from cnnexp.search import budget as B

    seconds = B.parse_budget(opts.budget or plan.budget or "")
    recipe = load_recipe(ref, list(overrides))
    rates = B.measure(recipe, resolve_device(device))
    seeds = opts.confirm_seeds or plan.confirm.seeds
    bp = B.make_plan(plan, seconds, rates, opts.confirm,
                     plan.confirm.epochs or recipe.train.epochs,
                     plan.confirm.max_seeds if seeds == "auto" else int(seeds))
    B.apply(plan, bp)
    plan.deadline = {"deadline": began + seconds,
                     "stage_ends": bp.stage_ends(began + seconds),
                     "trial_seconds": {s.name: s.trial_seconds for s in bp.stages},
                     "confirm_seeds": bp.confirm_seeds,
                     "confirm_run_seconds": bp.confirm_run_seconds}
    for line in bp.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return bp


def _stderr() -> Any:
    from cnnexp.console import SafeConsole as Console

    return Console(stderr=True)


def confirm_seeds(plan: Plan, opts: SearchOptions) -> tuple[int | str, str]:
    """The confirming stage's seeds, and why it is skipped ('' when it runs): with a budget,
    the planned seeds, if they still fit in the time left."""
    seeds = opts.confirm_seeds or plan.confirm.seeds
    budget = plan.deadline
    if not budget:
        return seeds, ""
    planned = budget["confirm_seeds"]
    if not planned:
        return 0, "the confirming stage did not fit the budget"
    from cnnexp.search.confirm import AUTO_START

    left = budget["deadline"] - time.time()
    pair = 2 * budget["confirm_run_seconds"]  # one seed of both arms
    fits = min(planned, int(max(left, 0) // pair))  # stages that ran long leave less
    if fits < AUTO_START:
        return 0, (f"the confirming stage needs ~{AUTO_START * pair / 60:.1f} min and "
                   f"{max(left, 0) / 60:.1f} min of the budget are left: skipped")
    if seeds == "auto":  # seeds until decided, at most as many as fit
        plan.confirm = plan.confirm.model_copy(update={"max_seeds": fits})
        return seeds, ""
    return fits, ""


def finish(storage: Any, plan: Plan, parent: tracking.Run | None, opts: SearchOptions,
           started: float, device: str = "auto", say: Any = lambda text: None,
           callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Results once every stage is done: the confirming stage, files, MLflow artifacts and
    descriptions, JSON. `started`: time.perf_counter() when the stages began (the search's
    time counts every stage, the confirming one included)."""
    import pandas as pd

    results = collect(storage, plan)
    left = {r.plan.name: counts(r.study.get_trials(deepcopy=False)) for r in results}
    unfinished = [f"{n} ({c.waiting + c.running} left)" for n, c in left.items() if not c.done]
    if unfinished:
        raise CheckFailed(f"search {plan.study} did not finish: {', '.join(unfinished)}; "
                          "rerun the same command (or add --resume) to continue")
    out = out_dir(opts, plan.study)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "trials.csv"
    with replaced(csv_path) as tmp:
        pd.DataFrame(rows(results)).to_csv(tmp, index=False)
    best = best_of(results)
    best_path = write_best_recipe(plan, best[0], best[1], out / "best.yaml") if best else None
    seeds, skipped = confirm_seeds(plan, opts)
    if skipped and best and opts.confirm:
        say(f"budget: {skipped}")
    confirmed = confirm_once(storage, plan, best, parent, seeds, opts.test, device, say,
                             callbacks) if best and opts.confirm and not skipped else None
    final = final_plan(plan, opts, best, confirmed, device) if best else None
    if final is not None:  # only made for a best trial
        say(final.line())
        best_path = write_best_recipe(plan, best[0], best[1], out / "best.yaml", final)
    seconds = time.perf_counter() - started
    result = result_json(plan, results, best, best_path, csv_path, seconds, confirmed,
                         skipped)
    result["final"] = final.to_dict() if final is not None else None
    if parent is not None:
        log_search(plan, results, best, parent, out, seconds, result)
    return result  # best is None when no trial completed: the command exits 1


