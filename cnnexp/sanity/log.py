"""One check's MLflow run: figures as metrics, plots and the curve as artifacts."""

from __future__ import annotations

import json
import math

from cnnexp.console import to_jsonable
from cnnexp.sanity.base import FAIL, CheckResult
from cnnexp.tracking import Recording
from cnnexp.tracking import tags as T


def log_check(run: Recording, r: CheckResult) -> None:
    """The check's figures, verdict and data on its run; figures are drawn only here, and
    only when the run is tracked."""
    if not run.active:
        return
    from cnnexp.sanity import plots

    run.log_metrics({k: v for k, v in {**r.metrics, "seconds": r.seconds}.items()
                     if isinstance(v, (int, float)) and math.isfinite(v)})
    run.set_tags({T.VERDICT: r.status})
    run.describe(f"**{r.name}: {r.status}**\n\n- measured: {r.measured}\n"
                 f"- expected: {r.expected}\n" + (f"- hint: {r.hint}\n" if r.hint else ""))
    run.log_text(json.dumps(to_jsonable(r.as_dict()), indent=2), "check.json")
    if r.name == "lr-range" and "result" in r.plot_data:
        res = r.plot_data["result"]
        rows = ["lr,loss,smoothed"] + [
            f"{lr:.6g},{loss:.6g},{res.smoothed[i] if i < len(res.smoothed) else ''}"
            for i, (lr, loss) in enumerate(zip(res.lrs, res.losses, strict=True))]
        run.log_text("\n".join(rows) + "\n", "lr_range.csv")
    figs = plots.figures_for(r)
    try:
        for path, fig in figs.items():
            run.log_figure(fig, path)
    finally:
        plots.close(figs)
    if r.status == FAIL:
        run.fail()
