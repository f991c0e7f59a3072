"""`cnnexp search` as a function: check everything, open the study, run the workers (in this
process, or N spawned ones), then report: tables, CSV, plots, best recipe, JSON."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnexp import tracking
from cnnexp.engine import Callback
from cnnexp.errors import BadInput, CheckFailed
from cnnexp.files import replaced
from cnnexp.redact import redact_url
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan, build_plan
from cnnexp.search.monitor import Monitor
from cnnexp.search.results import (
    StageResult,
    best_of,
    collect,
    parent_markdown,
    rows,
    stage_markdown,
    write_best_recipe,
)
from cnnexp.search.stages import ensure_root, narrowing_text
from cnnexp.search.storage import DEFAULT_STORAGE, counts, open_storage, require_study
from cnnexp.search.worker import Worker, WorkerArgs, worker_main
from cnnexp.tracking import tags as T


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


MAX_WORKERS = 256  # worker processes on one host: more is a typo


def out_dir(opts: SearchOptions, study: str) -> Path:
    return Path(opts.out or Path("outputs") / "search" / study)


def check_out(path: Path) -> None:
    """The output folder must be a folder we can write, checked before any work."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BadInput(f"--out {path}: {probe} is a file, not a folder (pick a folder for "
                       "trials.csv, best.yaml and the plots)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"--out {path}: {probe} is not writable")


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
    if opts.heartbeat < 1:
        raise BadInput(f"--heartbeat must be at least 1 second, got {opts.heartbeat}")
    from cnnexp.engine.device import resolve_device

    devices = [d.strip() for d in (opts.devices or "auto").split(",") if d.strip()] or ["auto"]
    for d in devices:
        resolve_device(d)
    plan.study = opts.study or f"{plan.recipe_name}-{plan.fingerprint}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", plan.study):
        raise BadInput(f"--study '{plan.study}': use letters, digits, '_', '-', '.' (no '/')")
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

    plan, devices = prepare(ref, overrides, opts)
    console = console or _stderr()
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
        with _sigterm_as_interrupt():
            if opts.workers == 1:
                args = WorkerArgs(plan, 0, devices[0], None, opts.heartbeat, opts.track)
                Worker(args, storage, callbacks, on_trial=monitor.refresh,
                       say=monitor.say).run()
            else:
                _run_processes(plan, opts, devices, monitor)
    except KeyboardInterrupt:
        monitor.close()
        _mark_interrupted(storage, plan, parent)
        raise
    monitor.refresh()
    monitor.close()
    try:
        with _sigterm_as_interrupt():
            return finish(storage, plan, parent, opts, time.perf_counter() - start, devices[0],
                          say=monitor.say, callbacks=callbacks)
    except KeyboardInterrupt:
        _mark_interrupted(storage, plan, parent)
        raise


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill PID` stops a search as cleanly as Ctrl-C does."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run_processes(plan: Plan, opts: SearchOptions, devices: list[str], monitor: Monitor) -> None:
    import multiprocessing as mp

    from cnnexp.engine.device import resolve_device

    on_cpu = [resolve_device(devices[i % len(devices)]).type == "cpu" for i in range(opts.workers)]
    threads = max(1, (os.cpu_count() or 1) // max(1, sum(on_cpu)))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, name=f"cnnexp-search-{i}", args=(WorkerArgs(
        plan, i, devices[i % len(devices)], threads if on_cpu[i] else None, opts.heartbeat,
        opts.track),)) for i in range(opts.workers)]
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # children start ignoring Ctrl-C
    try:
        for p in procs:
            p.start()
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.25)
            monitor.refresh()
    except KeyboardInterrupt:
        for p in procs:  # workers mark and re-queue their running trial on SIGTERM
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
        raise
    bad = [f"worker {i} exit {p.exitcode}" for i, p in enumerate(procs) if p.exitcode]
    if bad:
        monitor.say("[yellow]warning:[/] " + ", ".join(bad))


def _mark_interrupted(storage: Any, plan: Plan, parent: tracking.Run | None) -> None:
    import optuna

    if parent is None:
        return
    for sp in plan.stages:
        with contextlib.suppress(KeyError):
            study = optuna.load_study(study_name=f"{plan.study}/{sp.name}", storage=storage)
            tracking.end_if_running(study.user_attrs.get(A.RUN_ID), "KILLED")
    parent.describe(f"Search `{plan.study}` interrupted; continue with "
                    f"`cnnexp search ... --study {plan.study} --resume`")
    tracking.end_run(parent, "KILLED")


def finish(storage: Any, plan: Plan, parent: tracking.Run | None, opts: SearchOptions,
           seconds: float, device: str = "auto", say: Any = lambda text: None,
           callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Results once every stage is done: the confirming stage, files, MLflow artifacts and
    descriptions, JSON."""
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
    confirmed = _confirm(storage, plan, best, parent, opts, device, say, callbacks) \
        if best and opts.confirm else None
    result = _json(plan, results, best, best_path, csv_path, seconds, confirmed)
    if parent is not None:
        _log_to_mlflow(plan, results, best, parent, out, seconds, result)
    return result  # best is None when no trial completed: the command exits 1


def _confirm(storage: Any, plan: Plan, best: tuple, parent: tracking.Run | None,
             opts: SearchOptions, device: str, say: Any,
             callbacks: Sequence[Callback]) -> dict[str, Any]:
    """The confirming stage, once per study: a finished one (same best trial and seeds) is
    reused from the study, unless the test split is asked for."""
    import optuna

    from cnnexp.engine.device import resolve_device
    from cnnexp.search.confirm import run_confirm

    root = optuna.load_study(study_name=plan.study, storage=storage)
    seeds = opts.confirm_seeds or plan.confirm.seeds
    stage, trial = best
    key = {"stage": stage.plan.name, "trial": trial.number, "seeds": seeds,
           "epochs": plan.confirm.epochs, "test": "paired",
           **({"max_seeds": plan.confirm.max_seeds} if seeds == "auto" else {})}
    done = root.user_attrs.get(A.CONFIRM)
    if done and done.get("key") == key and not opts.test:
        say(f"confirm: reusing the finished confirming stage ({done['result']['headline']})")
        return done["result"]
    say(f"confirm: retraining the best configuration ({stage.plan.name}-{trial.number:02d}) "
        "and the recipe on the same " + (f"seeds until the verdict is decided (at most "
                                         f"{plan.confirm.max_seeds})" if seeds == "auto"
                                         else f"{seeds} seed(s)"))
    result = run_confirm(plan, dict(trial.params), device=resolve_device(device), seeds=seeds,
                         parent=parent, test=opts.test, callbacks=lambda label: callbacks,
                         say=say)
    from cnnexp.console import to_jsonable

    root.set_user_attr(A.CONFIRM, to_jsonable({"key": key, "result": {
        k: v for k, v in result.items() if k != "test"}}))
    return result


def _json(plan: Plan, results: list[StageResult], best: tuple | None, best_path: Path | None,
          csv_path: Path, seconds: float, confirmed: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    stages = []
    for r in results:
        s = r.summary()
        s["top"] = [{"trial": t.number, "name": t.user_attrs.get(A.NAME, ""),
                     "value": t.value, "params": dict(t.params),
                     "diagnosis": t.user_attrs.get(A.DIAGNOSIS)} for t in r.top[:5]]
        stages.append(s)
    best_obj = None
    if best:
        r, t = best
        best_obj = {"stage": r.plan.name, "trial": t.number, "value": t.value,
                    "noise": r.signal.best_text(), "within_noise": len(r.signal.within),
                    "params": dict(t.params), "epochs": r.plan.epochs,
                    "subset": r.plan.subset, "mlflow_run_id": t.user_attrs.get(A.RUN_ID),
                    "diagnosis": t.user_attrs.get(A.DIAGNOSIS)}
    return {"study": plan.study, "storage": redact_url(plan.storage), "metric": plan.metric,
            "direction": plan.direction, "headline": headline_of(best, confirmed),
            "stages": stages, "best": best_obj, "confirm": confirmed,
            "best_recipe_path": str(best_path) if best_path else None,
            "csv_path": str(csv_path), "seconds": round(seconds, 2)}


def headline_of(best: tuple | None, confirmed: dict[str, Any] | None) -> str:
    """The conclusion, in one line: the confirming stage's verdict, else what the search
    alone can say (one seed per trial: not a comparison with the recipe)."""
    if confirmed is not None:
        return confirmed["headline"]
    if best is None:
        return "no trial completed"
    r, t = best
    return (f"best trial {r.plan.name}-{t.number:02d}: {r.signal.best_text()}, one seed, "
            "not compared with the recipe (run without --no-confirm to confirm it)")


def _log_to_mlflow(plan: Plan, results: list[StageResult], best: tuple | None,
                   parent: tracking.Run, out: Path, seconds: float,
                   result: dict[str, Any]) -> None:
    from cnnexp.search.plots import figures

    for r in results:
        stage_run = tracking.attach(r.study.user_attrs.get(A.RUN_ID), parent.client)
        if stage_run is None:
            continue
        s = r.summary()
        stage_run.describe(stage_markdown(r, plan.metric, narrowing_text(r.study.user_attrs)))
        fid = r.fidelity
        stage_run.log_metrics({k: s[k] for k in ("complete", "pruned", "failed")} |
                              ({"best_value": s["best_value"]} if s["best_value"] is not None
                               else {}) |
                              ({"fidelity_rho": fid.rho} if fid and math.isfinite(fid.rho)
                               else {}))
        if fid:
            stage_run.set_tags({T.FIDELITY: fid.verdict})
        if tracking.run_status(stage_run) != "FINISHED":
            tracking.end_run(stage_run, "FINISHED")
    for name, fig in figures(results, plan.metric, plan.direction).items():
        with replaced(out / name) as tmp:
            fig.savefig(tmp, dpi=110)  # rendered once, logged as the file
        parent.log_artifact(str(out / name), "plots")
    import matplotlib.pyplot as plt

    plt.close("all")  # Optuna's plots live in pyplot's registry until closed
    parent.log_artifact(str(out / "trials.csv"))
    if result["best_recipe_path"]:
        parent.log_artifact(result["best_recipe_path"])
        parent.log_metrics({"best_value": result["best"]["value"]})
    confirmed = result.get("confirm")
    if confirmed:
        parent.log_metrics({k: v for k, v in {
            "confirm_best_mean": confirmed["best"]["mean"],
            "confirm_recipe_mean": confirmed["recipe"]["mean"],
            "confirm_delta": confirmed["delta"], "confirm_p": confirmed["p_value"],
            "confirm_detectable": confirmed.get("detectable", math.nan),
            "confirm_seeds": float(confirmed["seeds"]),
            **({"test_acc_mean": confirmed["test"]["test_acc_mean"]}
               if confirmed.get("test") else {})}.items()
            if isinstance(v, float) and math.isfinite(v)})
        parent.set_tags({T.CONFIRM_VERDICT: confirmed["verdict"]})
    with tempfile.TemporaryDirectory() as tmp:
        import json

        path = Path(tmp) / "search.json"
        path.write_text(json.dumps(result, indent=1, default=str))
        parent.log_artifact(str(path))
    parent.describe(f"**{result['headline']}**\n\n" +
                    parent_markdown(plan, results, best, seconds))
    parent.set_tags({T.EDGE_WARNINGS: sum(len(s["edge_warnings"])
                                                 for s in result["stages"])})
    tracking.end_run(parent, "FINISHED")
