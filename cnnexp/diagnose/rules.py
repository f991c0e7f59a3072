"""Reading learning curves, as the course teaches: overfitting, underfitting, not trained long
enough, plus unstable optimisation and runs that learn nothing. Pure functions over a run's
per-epoch history (and, when known, its class count and validation-set size: chance level and
noise).

Rules are applied in order and the first that matches wins (docs/review.md explains why):
unstable -> not_learning -> overfitting -> not_converged -> underfitting -> healthy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cnnexp.errors import BadInput, did_you_mean, validation_message

DIAGNOSES = ("overfitting", "underfitting", "not_converged", "unstable", "healthy",
             "not_learning", "unvalidated")


class Thresholds(BaseModel):
    """Every number the rules use; override with `--threshold name=value`."""

    model_config = ConfigDict(extra="forbid")

    gap: float = Field(0.05, ge=0, le=1)  # final train_acc - val_acc that counts as large
    gap_growth: float = Field(0.02, ge=0, le=1)  # rise of the gap from its minimum: "growing"
    val_loss_rise: float = Field(0.10, ge=0)  # val_loss above its minimum (relative): "rising"
    low_acc: float = Field(0.90, ge=0, le=1)  # final train_acc below this: training set not fit
    window: float = Field(0.25, gt=0, le=1)  # fraction of epochs read as "the end" (>= 2)
    min_gain: float = Field(0.01, ge=0, le=1)  # val_acc gain over the window: still improving
    min_loss_drop: float = Field(0.10, ge=0)  # relative val_loss drop over the window: same
    min_loss_abs: float = Field(0.02, ge=0)  # ... and at least this much in absolute terms
    schedule_end: float = Field(0.05, ge=0, le=1)  # last lr below this x its peak: schedule done
    loss_floor: float = Field(0.05, gt=0)  # relative changes are taken against at least this
    spike: float = Field(0.5, gt=0)  # epoch-to-epoch train_loss rise (relative): a spike
    acc_drop: float = Field(0.10, gt=0, le=1)  # one-epoch val_acc fall: a spike
    min_epochs: int = Field(3, ge=1)  # fewer epochs: too short to read a trend


def parse_thresholds(items: Iterable[str] | None, base: Thresholds | None = None) -> Thresholds:
    """`['gap=0.08', 'low_acc=0.7']` -> Thresholds; bad names/values raise BadInput."""
    values = (base or Thresholds()).model_dump()
    names = list(Thresholds.model_fields)
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise BadInput(f"threshold '{item}' is not NAME=VALUE (e.g. gap=0.08)")
        if key not in values:
            raise BadInput(f"unknown threshold '{key}'{did_you_mean(key, names)}")
        values[key] = raw.strip()
    try:
        return Thresholds.model_validate(values)
    except ValidationError as exc:
        raise BadInput(validation_message(exc, Thresholds, noun="threshold")) from None


@dataclass
class Diagnosis:
    diagnosis: str
    summary: str
    evidence: dict[str, Any]
    remedies: list[str]
    not_remedies: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"diagnosis": self.diagnosis, "summary": self.summary, "evidence": self.evidence,
                "remedies": self.remedies, "not_remedies": self.not_remedies}

    def markdown(self) -> str:
        """For run descriptions and reports."""
        lines = [f"**Diagnosis: {self.diagnosis}** — {self.summary}", ""]
        if self.remedies:
            lines += ["Remedies:", *[f"- {r}" for r in self.remedies], ""]
        if self.not_remedies:
            lines += ["Not remedies:", *[f"- {r}" for r in self.not_remedies], ""]
        return "\n".join(lines).rstrip()


def consensus(labels: Sequence[str]) -> str:
    """One cell for several seeds: 'healthy' when they agree, else the most common with its
    count, e.g. 'overfitting 2/3' ('' when there is none)."""
    labels = [x for x in labels if x]
    if not labels:
        return ""
    top = max(dict.fromkeys(labels), key=labels.count)  # ties: the first seen
    n = labels.count(top)
    return top if n == len(labels) else f"{top} {n}/{len(labels)}"


def _series(history: Sequence[Mapping[str, float]], key: str) -> list[float]:
    return [float(h.get(key, math.nan)) for h in history]


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd) if _finite(x) else float("nan")


def diagnose(history: Sequence[Mapping[str, float]], *, status: str = "completed",
             thresholds: Thresholds | None = None, classes: int | None = None,
             eval_size: int | None = None) -> Diagnosis:
    """Classify per-epoch `train_loss/train_acc/val_loss/val_acc` (in epoch order). `classes`
    gives the chance level (1/C) and `eval_size` the noise of a validation accuracy."""
    t = thresholds or Thresholds()
    tl, ta = _series(history, "train_loss"), _series(history, "train_acc")
    vl, va = _series(history, "val_loss"), _series(history, "val_acc")
    n = len(history)
    if n == 0:
        return _make("not_converged", "no epoch finished: nothing to read", {"epochs": 0}, 0)
    if status != "diverged" and all(_finite(x) for x in tl) and \
            not any(_finite(x) for x in vl + va):
        return _make("unvalidated", "no validation split (a final run on train+val): the "
                     "curves cannot show over- or underfitting; the decisions were made on the "
                     "runs before it", {"epochs": n, "train_loss": _r(tl[-1]),
                                        "train_acc": _r(ta[-1])}, n)
    bad = next((i for i in range(n) if not (_finite(tl[i]) and _finite(vl[i]))), None)
    if status == "diverged" or bad is not None:
        ep = (bad if bad is not None else n - 1) + 1
        return _make("unstable", f"training diverged in epoch {ep} (loss non-finite or exploded)",
                     {"epochs": n, "diverged_epoch": ep, "train_loss": _r(tl[ep - 1])}, n)
    ev = _evidence(tl, ta, vl, va, t)
    ev |= _context(history, va, t, classes, eval_size)
    if ev.get("chance") is not None and ev["best_val_acc"] <= ev["chance"] + ev["chance_band"]:
        return _make("not_learning", _not_learning_summary(ev, tl, classes), ev, n)
    spikes = ev["loss_spikes"] + ev["acc_drops_unstable"]
    if spikes:
        what = []
        if ev["loss_spikes"]:
            what.append(f"train_loss jumped by >= {t.spike:.0%} in epoch(s) {ev['loss_spikes']}")
        if ev["acc_drops_unstable"]:
            what.append(f"val_acc fell by >= {t.acc_drop:.2f} in one epoch in epoch(s) "
                        f"{ev['acc_drops_unstable']}")
        return _make("unstable", "; ".join(what), ev, n)
    large = ev["gap"] >= t.gap
    fitted = ev["train_acc"] >= t.low_acc
    rising = ev["val_loss_rise"] >= t.val_loss_rise
    # validation flat over the window while the gap grows is overfitting too, before the
    # training set is fit (a small model on hard data memorises what it can)
    w = min(max(2, ev.get("window") or 2), n)
    widening = (ta[-1] - ta[-w]) - (va[-1] - va[-w]) >= t.gap_growth  # over the window
    plateau = n >= 2 * t.min_epochs and widening and \
        ev["val_acc_gain"] < max(t.min_gain, ev.get("noise") or 0.0)
    if large and (rising or ((fitted or plateau) and ev["gap_growth"] >= t.gap_growth)):
        why = [f"gap grown by {ev['gap_growth']:.3f} since epoch {ev['gap_min_epoch']}"]
        if rising:
            why.append(f"val_loss {ev['val_loss_rise']:+.0%} above its minimum at epoch "
                       f"{ev['val_loss_min_epoch']}")
        return _make("overfitting", f"train_acc {ev['train_acc']:.3f} vs val_acc "
                     f"{ev['val_acc']:.3f}: gap {ev['gap']:.3f} (>= {t.gap}); "
                     + "; ".join(why), ev, n)
    if n < t.min_epochs:
        ev["why_not_converged"] = "few_epochs"  # the remedy follows the reason given
        return _make("not_converged", f"only {n} epoch(s): too few to read a trend (min_epochs="
                     f"{t.min_epochs})", ev, n)
    acc_rising = ev["val_acc_gain"] >= max(t.min_gain, ev.get("noise") or 0.0)
    loss_falling = ev["val_loss_drop"] >= t.min_loss_drop and \
        ev["val_loss_drop_abs"] >= t.min_loss_abs
    improving = acc_rising or loss_falling
    if improving and ev["schedule_room"]:
        ev["why_not_converged"] = "improving"
        return _make("not_converged", f"validation still improving over the last "
                     f"{ev['window']} epochs: val_acc {ev['val_acc_gain']:+.3f}"
                     + (f" (noise ±{ev['noise']:.3f})" if ev.get("noise") else "")
                     + f", val_loss -{ev['val_loss_drop']:.0%}", ev, n)
    if not fitted and large:  # the course's "not training enough": both low, still a gap
        ev["why_not_converged"] = "both_low"
        return _make("not_converged", f"train_acc {ev['train_acc']:.3f} and val_acc "
                     f"{ev['val_acc']:.3f} both low (< {t.low_acc}) with a gap of "
                     f"{ev['gap']:.3f}: not trained enough", ev, n)
    if not fitted:
        return _make("underfitting", f"train_acc {ev['train_acc']:.3f} (< {t.low_acc}) and "
                     f"val_acc {ev['val_acc']:.3f} both low and close (gap {ev['gap']:.3f}), "
                     "curves flat", ev, n)
    ending = ("validation was still rising when the learning-rate schedule ended: a longer "
              "schedule (more epochs) may add a little" if improving else
              "validation has levelled off")
    return _make("healthy", f"train_acc {ev['train_acc']:.3f}, val_acc {ev['val_acc']:.3f}, "
                 f"gap {ev['gap']:.3f}; {ending}", ev, n)


def _context(history: Sequence[Mapping[str, float]], va: list[float], t: Thresholds,
             classes: int | None, eval_size: int | None) -> dict[str, Any]:
    """Chance level, the noise of the final accuracy, and how much schedule is left."""
    from cnnexp.noise import binomial_se, noise_band

    out: dict[str, Any] = {"chance": None, "chance_band": None, "noise": None}
    if classes and classes > 1:
        chance = 1.0 / classes
        out["chance"] = _r(chance)
        # within noise of chance (2 SE on the validation set), else within half the chance
        band = 2 * binomial_se(chance, eval_size) if eval_size else 0.5 * chance
        out["chance_band"] = _r(max(band, 1.0 / eval_size if eval_size else 0.0))
    if eval_size and len(va) > 1:
        w = min(max(2, math.ceil(t.window * len(va))), len(va) - 1)
        out["noise"] = _r(noise_band(va[-1 - w], va[-1], eval_size))
    lrs = [float(h["lr"]) for h in history if _finite(h.get("lr", math.nan))]
    peak = max(lrs, default=0.0)
    out["schedule_left"] = _r(lrs[-1] / peak) if peak > 0 else None
    out["schedule_room"] = peak <= 0 or lrs[-1] > t.schedule_end * peak
    return out


def _not_learning_summary(ev: Mapping[str, Any], tl: list[float], classes: int | None) -> str:
    ln_c = math.log(classes) if classes else math.nan
    stuck = _finite(ln_c) and abs(tl[-1] - ln_c) < 0.1 * ln_c
    return (f"val_acc never above chance (best {ev['best_val_acc']:.3f}; chance "
            f"{ev['chance']:.3f} ± {ev['chance_band']:.3f}); train_loss {tl[-1]:.3f}"
            + (f" stuck at ln C = {ln_c:.2f}: the loss is not moving" if stuck else
               f" (ln C = {ln_c:.2f})"))


def _evidence(tl: list[float], ta: list[float], vl: list[float], va: list[float],
              t: Thresholds) -> dict[str, Any]:
    """The figures every rule reads (all of them are reported, whichever rule fires)."""
    n = len(tl)
    gaps = [a - b for a, b in zip(ta, va, strict=True)]
    gmin = min(range(n), key=lambda i: gaps[i])
    vmin = min(range(n), key=lambda i: vl[i])
    w = min(max(2, math.ceil(t.window * n)), n - 1)
    start = n - 1 - w
    floor = t.loss_floor
    loss_spikes = [i + 1 for i in range(1, n) if (tl[i] - tl[i - 1]) / max(tl[i - 1], floor)
                   >= t.spike]
    acc_drops = [i + 1 for i in range(1, n) if va[i - 1] - va[i] >= t.acc_drop]
    # a single dip early on (the first third of the epochs: one-cycle's warm-up at its peak
    # LR, BatchNorm statistics catching up) that the run climbed back out of is not
    # instability; a later one, one never recovered from, or repeated dips are
    lasting = [e for e in acc_drops if max(va[e - 1:]) < va[e - 2] or e > n / 3]
    best = max(range(n), key=lambda i: (va[i], -vl[i]))  # the engine's tie-break too
    return {
        "epochs": n, "train_acc": _r(ta[-1]), "val_acc": _r(va[-1]),
        "train_loss": _r(tl[-1]), "val_loss": _r(vl[-1]), "gap": _r(gaps[-1]),
        "gap_min": _r(gaps[gmin]), "gap_min_epoch": gmin + 1,
        "gap_growth": _r(gaps[-1] - gaps[gmin]),
        "val_loss_min": _r(vl[vmin]), "val_loss_min_epoch": vmin + 1,
        "val_loss_rise": _r((vl[-1] - vl[vmin]) / max(vl[vmin], floor)),
        "best_val_acc": _r(va[best]), "best_epoch": best + 1,
        "window": w if n > 1 else 0,
        "val_acc_gain": _r(va[-1] - va[start]) if n > 1 else 0.0,
        "val_loss_drop": _r((vl[start] - vl[-1]) / max(vl[start], floor)) if n > 1 else 0.0,
        "val_loss_drop_abs": _r(vl[start] - vl[-1]) if n > 1 else 0.0,
        "loss_spikes": loss_spikes, "acc_drops": acc_drops,
        "acc_drops_unstable": lasting if len(acc_drops) < 2 else acc_drops,
    }


def _make(kind: str, summary: str, ev: dict[str, Any], n: int) -> Diagnosis:
    remedies, not_remedies = remedies_for(kind, ev, n)
    return Diagnosis(kind, summary, ev, remedies, not_remedies)


def remedies_for(kind: str, ev: Mapping[str, Any], epochs: int) -> tuple[list[str], list[str]]:
    """The course's solutions and non-solutions for each case, with overrides to try."""
    more = max(2 * epochs, epochs + 5)
    if kind == "overfitting":
        best = ev.get("best_epoch")
        return ([
            "Add regularisation: weight decay (`opt.weight_decay=5e-4`), dropout "
            "(`reg.dropout=0.3`), or `reg=full`",
            "Augment the data (`aug=standard`, `aug=strong`: crops, flips, cutout, mixup)",
            "Collect more training data",
            "Use a smaller model (`arch.width=16`, fewer layers)",
            f"Keep the best epoch (val_acc peaked at epoch {best}); `reg=early_stopping` stops "
            "there",
        ], [
            "Training longer: the gap only widens as the model memorises the training set",
            "A bigger model or more complex features: more capacity to memorise",
        ])
    if kind == "underfitting":
        return ([
            "A bigger model: wider (`arch.width=64`) or deeper (`arch=resnet20`)",
            "Less regularisation: lower `opt.weight_decay`, `reg.dropout=0`, milder `aug`",
            f"Train longer only while the curves still improve (`train.epochs={more}`)",
            "Check the learning rate: `cnnexp lr-find`",
        ], [
            "More training data: the model does not fit the data it already has",
            "More regularisation: it restricts the model's capacity further",
        ])
    if kind == "not_converged":
        why = {"few_epochs": f"{epochs} epoch(s) cannot show a trend, so nothing here says "
                             "whether more would help",
               "both_low": "train and validation accuracy are both still low",
               }.get(ev.get("why_not_converged", ""), "validation was still improving")
        return ([
            f"Train for more epochs (`train.epochs={more}`): {why}",
            "Or a larger learning rate if progress is slow (`cnnexp lr-find`)",
        ], [
            "Judging capacity or regularisation from these curves: they have not levelled off",
        ])
    if kind == "unstable":
        return ([
            "Lower the learning rate (`opt.lr` / 3 or 10; `cnnexp lr-find` suggests one)",
            "Warm up and clip gradients (`opt.warmup_epochs=1`, `opt.grad_clip=1.0`)",
            "Normalise and initialise properly (`arch.norm=batch`, `arch.init=kaiming`); "
            "`cnnexp sanity` checks the initial loss and gradient flow",
        ], [
            "Training longer: the spikes come from optimisation, not from too few epochs",
            "More regularisation or more data: neither stabilises the optimiser",
        ])
    if kind == "not_learning":
        return ([
            "Check the learning rate: a loss stuck at ln C means too low, NaN or chance after "
            "a spike means too high (`cnnexp lr-find` suggests one)",
            "Normalise and initialise (`arch.norm=batch`, `arch.init=kaiming`)",
            "Run `cnnexp sanity`: initial loss ≈ ln C, gradients reach the first layer, a tiny "
            "subset can be overfit",
        ], [
            "A bigger model or more data: nothing is being learned yet",
            "Training longer with the same settings",
            "Less regularisation: it is not what stops a model at chance",
        ])
    if kind == "unvalidated":
        return (["Read the decisions from the validated runs (search, ablation) and the final "
                 "figure from the test split (`--test`)"], [])
    return (["Nothing to fix: tune further (`cnnexp search`) or measure components "
             "(`cnnexp ablate`)"], [])


def diagnose_fit(result: Any, thresholds: Thresholds | None = None) -> Diagnosis:
    """The diagnosis of an engine FitResult (chance level and noise from its data)."""
    data = result.trainer.data
    return diagnose(result.history, status=result.status, thresholds=thresholds,
                    classes=data.num_classes, eval_size=data.n_val or None)


CURVE_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


def context_of(rec: Mapping[str, Any]) -> dict[str, int | None]:
    """`classes` and `eval_size` for diagnose() from a tracked run's record (query.run_record):
    logged as params (runs of older versions: as metrics)."""
    def value(key: str) -> int | None:
        raw = rec.get("params", {}).get(key, rec.get("metrics", {}).get(key))
        try:
            return int(float(raw)) or None
        except (TypeError, ValueError):
            return None

    return {"classes": value("classes"), "eval_size": value("val_images")}
