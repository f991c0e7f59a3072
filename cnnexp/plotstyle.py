"""One setting every cnnexp figure shares: text is drawn as written. Matplotlib reads text
between `$` signs as math (mathtext) and raises on what it cannot parse, so a run name, an
arm label or a class folder holding `$\\foo{$` broke a chart after all the training. cnnexp's
own figures use no math, so parsing is off for the process that draws them; log axes get
plain-number tick labels (`log_scale`), since matplotlib's default ones are mathtext and would
print as `$\\mathdefault{10^{-1}}$`."""

from __future__ import annotations


def plain_text() -> None:
    import matplotlib

    matplotlib.rcParams["text.parse_math"] = False


def log_scale(ax, which: str = "x") -> None:
    """A log axis whose tick labels are plain numbers (1e-01, 4e-01), not mathtext."""
    from matplotlib.ticker import LogFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(LogFormatter())
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
