"""Coarse -> fine narrowing and the edge check, as pure functions (no Optuna, no I/O).

Numeric ranges are handled in "t-space": log10(x) for `log: true`, x otherwise, so "the outer
10%" and "a margin" mean the same thing on a log axis as they do on a linear one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Bound = tuple[float | None, float | None]  # the schema's valid [low, high] (None: unbounded)
# at most this share of a range (t-space, so of a stage's trials) may lie past an old edge
MAX_EXTENSION_SHARE = 0.25
StandsOut = Callable[[str, str], bool]  # (path, side) -> the edge value beats the rest


@dataclass(frozen=True)
class Range:
    """A numeric range sampled uniformly in t-space."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.integer:
            out["int"] = True
        return out

    def show(self) -> str:
        return f"[{fmt(self.low)}, {fmt(self.high)}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """A categorical parameter."""

    choices: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}

    def show(self) -> str:
        return "{" + ", ".join(str(c) for c in self.choices) + "}"


Param = Range | Choice
Space = dict[str, Param]


def from_dict(d: Mapping[str, Any]) -> Param:
    if "choices" in d:
        return Choice(tuple(d["choices"]))
    return Range(float(d["low"]), float(d["high"]), bool(d.get("log", False)),
                 bool(d.get("int", False)))


def fmt(x: float) -> str:
    """Short human form: 1e-05 -> 1e-5, 0.95 -> 0.95, 3.2e-03 -> 3.2e-3."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2),
                  f"{x:.2g}")


def to_t(x: float, log: bool) -> float:
    return math.log10(x) if log else x


def from_t(t: float, log: bool) -> float:
    return 10.0 ** t if log else t


def edge_side(value: float, r: Range, edge: float = 0.1) -> str | None:
    """'lower' / 'upper' when `value` lies in the outer `edge` fraction (t-space) of `r`."""
    lo, hi = to_t(r.low, r.log), to_t(r.high, r.log)
    t, width = to_t(value, r.log), hi - lo
    if t <= lo + edge * width:
        return "lower"
    if t >= hi - edge * width:
        return "upper"
    return None


def at_bound(r: Range, side: str, bound: Bound) -> bool:
    """The range already touches the schema's limit on that side: it cannot be extended, and a
    best value there is a finding (e.g. 'no dropout'), not a badly placed range."""
    limit = bound[0] if side == "lower" else bound[1]
    if limit is None:
        return False
    edge_value = r.low if side == "lower" else r.high
    return math.isclose(edge_value, limit, rel_tol=1e-9, abs_tol=1e-12)


def edge_warning(path: str, value: float, r: Range, side: str) -> str:
    return f"best {path}={fmt(value)} is at the {side} edge of [{fmt(r.low)}, {fmt(r.high)}]"


def _clip(x: float, bound: Bound) -> float:
    lo, hi = bound
    if lo is not None:
        x = max(x, lo)
    if hi is not None:
        x = min(x, hi)
    return x


def narrow_range(r: Range, values: Sequence[float], *, margin: float = 0.1,
                 side: str | None = None, extend: float = 1.0,
                 bound: Bound = (None, None),
                 max_share: float = MAX_EXTENSION_SHARE) -> Range:
    """The next stage's range: spans `values` (the top-k trials), padded by `margin` x the old
    width on each side, clipped to the old range. On an edge `side` the range also reaches
    past the old edge: by `extend` decades for log ranges, by `extend`/2 x the old width for
    linear ones — but the part past the edge is at most `max_share` of the new range (so at
    most that share of the next stage's trials is spent there); never beyond the schema
    `bound`."""
    lo, hi = to_t(r.low, r.log), to_t(r.high, r.log)
    width = hi - lo
    ts = [to_t(v, r.log) for v in values]
    new_lo = max(lo, min(ts) - margin * width)
    new_hi = min(hi, max(ts) + margin * width)
    step = extend if r.log else extend * width / 2
    # the part past the edge is at most max_share of the whole: step <= share/(1-share) x core
    ratio = math.inf if max_share >= 1 else max_share / (1 - max_share)
    if side == "lower":
        core = new_hi - lo
        new_lo = lo - min(step, ratio * core)
    elif side == "upper":
        core = hi - new_lo
        new_hi = hi + min(step, ratio * core)
    low, high = from_t(new_lo, r.log), from_t(new_hi, r.log)
    if r.integer:
        low, high = float(math.floor(low + 1e-9)), float(math.ceil(high - 1e-9))
    else:
        low, high = _round_sig(low, "down"), _round_sig(high, "up")
    if r.log and bound[0] is not None and bound[0] <= 0:
        bound = (None, bound[1])  # a log range stays positive by construction
    return Range(_clip(low, bound), _clip(high, bound), r.log, r.integer)


def _round_sig(x: float, way: str, digits: int = 3) -> float:
    """Round outward to `digits` significant digits so ranges print and store cleanly."""
    if x == 0 or not math.isfinite(x):
        return x
    scale = 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1)
    q = x / scale
    q = math.floor(q + 1e-9) if way == "down" else math.ceil(q - 1e-9)
    return float(f"{q * scale:.{digits + 2}g}")


def narrow_choice(c: Choice, values: Sequence[Any]) -> Choice:
    """Keep the choices that appear among the top-k trials, in their original order."""
    kept = tuple(x for x in c.choices if x in set(values))
    return Choice(kept or c.choices)


@dataclass
class Narrowed:
    space: Space
    warnings: list[str]
    changes: dict[str, tuple[str, str, str]]  # path -> (old, new, how) as printed


def describe_change(old: Param, new: Param, side: str | None = None) -> str:
    """The words for what happened to a range, checked against the numbers: `narrowed` only
    when the new range is narrower and inside the old one; past an edge it is `extended`
    (with how much of the next stage it may take)."""
    if old == new:
        return "kept"
    if isinstance(old, Choice) or isinstance(new, Choice):
        return "narrowed" if len(new.choices) < len(old.choices) else "kept"  # type: ignore[union-attr]
    lo, hi = to_t(old.low, old.log), to_t(old.high, old.log)
    nlo, nhi = to_t(new.low, new.log), to_t(new.high, new.log)
    past = max(lo - nlo, 0.0) + max(nhi - hi, 0.0)
    if past <= 0:
        return "narrowed" if nhi - nlo < hi - lo else "kept"
    unit = " decades" if old.log else ""
    where = "lower" if nlo < lo else "upper"
    share = past / (nhi - nlo) if nhi > nlo else 1.0
    shrunk = (nlo > lo) if where == "upper" else (nhi < hi)
    how = (f"extended {fmt(past)}{unit} past the {where} edge (best value there; at most "
           f"{share:.0%} of the next trials fall past it)")
    return ("narrowed on the other side, " + how) if shrunk else how


def next_space(space: Space, top: Sequence[Mapping[str, Any]], best: Mapping[str, Any], *,
               margin: float = 0.1, edge: float = 0.1, extend: float = 1.0,
               bounds: Mapping[str, Bound] | None = None, signal: bool = True,
               stands_out: StandsOut | None = None,
               max_share: float = MAX_EXTENSION_SHARE) -> Narrowed:
    """The following stage's space from this stage's top-k params (best first) and the best
    trial's params; edge warnings name parameters whose best value sits at a range edge and
    beats the rest of the range (`stands_out`). A stage without signal is not narrowed."""
    bounds = bounds or {}
    if not top or not signal:
        why = "kept (no signal to narrow around)" if top else "kept (no completed trial)"
        return Narrowed(dict(space), [], {p: (v.show(), v.show(), why) for p, v in space.items()})
    new: Space = {}
    warnings = edge_warnings(space, best, edge=edge, bounds=bounds, stands_out=stands_out)
    flagged = {w.split("=")[0].removeprefix("best ") for w in warnings}
    sides: dict[str, str | None] = {}
    for path, param in space.items():
        values = [t[path] for t in top if path in t]
        if not values:
            new[path] = param
        elif isinstance(param, Choice):
            new[path] = narrow_choice(param, values)
        else:
            side = edge_side(best[path], param, edge) if path in flagged else None
            sides[path] = side
            new[path] = narrow_range(param, values, margin=margin, side=side, extend=extend,
                                     bound=bounds.get(path, (None, None)), max_share=max_share)
    changes = {p: (space[p].show(), new[p].show(), describe_change(space[p], new[p],
                                                                    sides.get(p)))
               for p in space}
    return Narrowed(new, warnings, changes)


def edge_warnings(space: Space, best: Mapping[str, Any], *, edge: float = 0.1,
                  bounds: Mapping[str, Bound] | None = None,
                  stands_out: StandsOut | None = None) -> list[str]:
    """One line per numeric parameter whose best value is in the outer `edge` of its range
    (unless that edge is the schema's own limit, which cannot be moved, or the value does not
    stand out from the rest of the range: a flat response is not a finding)."""
    bounds = bounds or {}
    out = []
    for path, param in space.items():
        if isinstance(param, Range) and path in best:
            side = edge_side(best[path], param, edge)
            if side and not at_bound(param, side, bounds.get(path, (None, None))) and \
                    (stands_out is None or stands_out(path, side)):
                out.append(edge_warning(path, best[path], param, side))
    return out
