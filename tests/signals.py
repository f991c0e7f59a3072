"""Child processes that a test interrupts with SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn` for a child a test will Ctrl-C: SIGINT back to its default action. A shell
    starts background jobs (`cmd &`) with SIGINT ignored, the child inherits that, and Python
    then never turns Ctrl-C into KeyboardInterrupt: the test would pass or fail depending on
    how the suite was launched."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
