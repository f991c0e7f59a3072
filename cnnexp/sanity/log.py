"""One check's MLflow run: figures as metrics, plots and the curve as artifacts."""

from __future__ import annotations

import json
import math
from typing import Any

from cnnexp.sanity.base import FAIL, CheckResult


def _jsonable(value: Any) -> Any:
    from cnnexp.console import _clean

    return _clean(value)


def log_check(run: Any, r: CheckResult) -> None:
    """`run` is a cnnexp.tracking.Run; figures are drawn only here, when they are logged."""
    from cnnexp.sanity import plots

    run.log_metrics({k: v for k, v in {**r.metrics, "seconds": r.seconds}.items()
                     if isinstance(v, (int, float)) and math.isfinite(v)})
    run.set_tags({"cnnexp.verdict": r.status})
    run.describe(f"**{r.name}: {r.status}**\n\n- measured: {r.measured}\n"
                 f"- expected: {r.expected}\n" + (f"- hint: {r.hint}\n" if r.hint else ""))
    run.log_text(json.dumps(_jsonable(r.as_dict()), indent=2), "check.json")
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
        run.end_status = "FAILED"
