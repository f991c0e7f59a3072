"""Terminal output shared by the commands: JSON contract, errors, progress, tables.

With --json, stdout carries exactly one JSON object and everything human goes to stderr."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

T = TypeVar("T")


class SafeConsole(Console):
    """A rich Console on which text that is not valid markup prints as written instead of
    raising MarkupError: user text (recipe and run names, arm labels, class folders) reaches
    many tables and lines, and one stray `[/]` must not end a command after its training.
    Sites that show user text escape it too, so it prints exactly; this is the backstop."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        from rich.errors import MarkupError
        from rich.text import Text

        try:
            return super().render_str(text, **kwargs)
        except MarkupError:
            return Text(text, style=kwargs.get("style") or "")


err = SafeConsole(stderr=True)


def to_jsonable(value: Any) -> Any:
    """JSON-safe values: NaN/inf become null, tuples lists, numbers stay numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return to_jsonable(value.item())
    return value


_emitted = False  # has this command printed its JSON object yet?


def emit_json(obj: dict[str, Any]) -> None:
    """The command's one JSON object on stdout (any URL password in it redacted)."""
    from cnnexp.redact import redact_url

    global _emitted
    text = json.dumps(to_jsonable(obj), indent=None, sort_keys=False)
    sys.stdout.write(redact_url(text) + "\n")
    sys.stdout.flush()
    _emitted = True


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be: every command then
    stops the same way for all three (runs ended KILLED and resumable, --json's one object),
    and exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = ("SIGTERM", "SIGHUP")


@contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated in the main thread for the block's duration."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    old = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:  # no SIGHUP on Windows
            continue
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave the process's handlers alone
            break
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def guarded(fn: Callable[[], T], json_mode: bool = False) -> T:
    """Run a command body; bad input -> one line + exit 2, a failed check or run (the disk or
    the tracking store failing under it included) -> exit 1, Ctrl-C -> exit 130, SIGTERM ->
    143, SIGHUP -> 129 (the same stop as Ctrl-C). No traceback for any of them, and no
    password in the line.

    With --json, a command that ends this way without having printed its result prints
    `{"error": LINE, "exit_code": N}` on stdout, so stdout always holds exactly one object."""
    from cnnexp.errors import BadInput, CheckFailed, environment_failure, memory_failure

    global _emitted
    _emitted = False
    try:
        with stop_signals_as_interrupt():
            return fn()
    except (typer.Exit, typer.Abort):
        raise  # the command chose its exit code
    except BadInput as exc:
        _fail("error", str(exc), 2, json_mode)
    except CheckFailed as exc:
        _fail("failed", str(exc), 1, json_mode)
    except Terminated as exc:
        import signal

        _fail("interrupted", f"stopped by {signal.Signals(exc.signum).name}", 128 + exc.signum,
              json_mode)
    except KeyboardInterrupt:
        _fail("interrupted", "", 130, json_mode)
    except Exception as exc:
        no_memory = memory_failure(exc)  # the recipe asked for more than the machine has
        if no_memory:
            _fail("error", no_memory, 2, json_mode)
        reason = environment_failure(exc)
        if reason is None:
            raise  # a bug: the traceback is what a report needs
        _fail("failed", reason, 1, json_mode)


def _fail(label: str, message: str, code: int, json_mode: bool) -> NoReturn:
    from cnnexp.redact import redact_url

    message = redact_url(" ".join(message.split()))
    if message:
        err.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
    else:
        err.print(f"[yellow]{label}[/]")
    if json_mode and not _emitted:
        emit_json({"error": message or label, "exit_code": code})
    raise typer.Exit(code) from None


def quiet_libraries() -> None:
    """MLflow/alembic chatter would bury the tool's own output."""
    import logging
    import os
    import warnings

    # with an http:// tracking server MLflow prints "View run ... at" on stdout at each run's
    # end, which would break --json's one object on stdout
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # artifact downloads (train --resume, report) would draw progress bars on the terminal
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("alembic", "mlflow", "optuna", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING if name != "alembic" else logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def show_progress(json_mode: bool, quiet: bool) -> bool:
    return not json_mode and not quiet and err.is_terminal


def progress_bar(*, label: str = "{task.description}", info: bool = True,
                 remaining: bool = False, console: Console | None = None) -> Any:
    """The one style of progress bar every command uses (stderr, cleared when done): a label,
    the bar, done/total, an optional info field (`task.fields[info]`), elapsed time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console or err, transient=True)


@contextmanager
def training_progress(enabled: bool, label: str = "train") -> Iterator[list[Any]]:
    """A rich progress bar over epochs and batches, as an engine callback list (empty when
    disabled: no TTY, --json or -q)."""
    if not enabled:
        yield []
        return
    from cnnexp.engine.callbacks import Callback

    progress = progress_bar()

    class Bar(Callback):
        def on_fit_start(self, state: Any) -> None:
            self.epochs = progress.add_task(label, total=state.epochs, info="")
            self.batches = progress.add_task("  batches", total=state.steps_per_epoch, info="")

        def on_batch_end(self, state: Any, batch: int) -> None:
            progress.update(self.batches, completed=batch + 1)

        def on_epoch_end(self, state: Any, metrics: dict[str, float]) -> None:
            info = " ".join(f"{k}={metrics[k]:.4f}" for k in ("val_acc", "val_loss")
                            if k in metrics) or f"train_loss={metrics['train_loss']:.4f}"
            progress.update(self.epochs, advance=1, info=info)
            progress.reset(self.batches)

    with progress:
        yield [Bar()]


def summary_table(title: str, rows: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=escape(title), show_header=False, title_justify="left")
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else escape(str(value))
        table.add_row(escape(key), shown)
    SafeConsole().print(table)
