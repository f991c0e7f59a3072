"""One setting every cnnexp figure shares: text is drawn as written. Matplotlib reads text
between `$` signs as math (mathtext) and raises on what it cannot parse, so a run name, an
arm label or a class folder holding `$\\foo{$` broke a chart after all the training. cnnexp's
own figures use no math, so parsing is off for the process that draws them."""

from __future__ import annotations


def plain_text() -> None:
    import matplotlib

    matplotlib.rcParams["text.parse_math"] = False
