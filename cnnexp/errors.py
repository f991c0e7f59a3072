"""Errors that the CLI turns into a one-line message and exit code 2 (bad input)."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel


class BadInput(Exception):
    """The user gave something cnnexp cannot use: a recipe, an override, a path, a name.
    The message is always one line (library messages may carry newlines)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class CheckFailed(Exception):
    """A run or check finished but its verdict is a failure (exit code 1)."""


class StoreFailed(CheckFailed):
    """The tracking store (or the disk under it) failed while a run was being recorded: exit
    code 1, what was stored before is kept."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


SHOWN_VALUE_CHARS = 60  # a value quoted back in a message is cut to this many characters


def shorten(text: str, limit: int = SHOWN_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid names nearest to `name`, best first (may be empty)."""
    choices = sorted(set(choices))
    return difflib.get_close_matches(name, choices, n=n, cutoff=0.5)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or ' (valid: a, b, c)' when nothing is close."""
    choices = sorted(set(choices))
    near = closest(name, choices)
    if near:
        return " (did you mean " + " or ".join(f"'{c}'" for c in near) + "?)"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f" (valid: {shown})" if choices else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> BadInput:
    return BadInput(f"unknown {kind} '{name}'{did_you_mean(name, choices)}")


def validation_message(exc: Any, model: type[BaseModel], where: str = "",
                       noun: str = "value for") -> str:
    """A pydantic ValidationError as one line: its first error, with the closest valid key
    for an unknown one (looked up in `model`'s fields at that place)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    prefix = f"{where}: " if where else ""
    if err["type"] == "extra_forbidden":
        section, _, leaf = loc.rpartition(".")
        near = closest(leaf, fields_at(model, section))
        hint = f" (did you mean '{section + '.' if section else ''}{near[0]}'?)" if near else \
            did_you_mean(loc, dotted_keys(model))
        return f"{prefix}unknown key '{loc}'{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    if branches := _union_branches(exc.errors()):  # `int | "auto"`: one line for the field
        loc = ".".join(str(p) for p in err["loc"][:-1])
        msg = ", or ".join([msg, *(m.removeprefix("Input should be ") for m in branches)])
    value = err.get("input")
    shown = "" if isinstance(value, dict) or "input" not in err else \
        f" (got {shorten(repr(value))})"
    return f"{prefix}invalid {noun} '{loc}': {msg}{shown}"


def _union_branches(errors: list[dict[str, Any]]) -> list[str]:
    """For a value no member of a union field accepts, pydantic reports one error per member,
    at the field's location plus the member's tag (`constrained-int`, `literal['auto']`):
    the other members' messages. Empty for any other error."""
    first = errors[0]["loc"]
    same = [e for e in errors[1:] if len(e["loc"]) == len(first) and e["loc"][:-1] == first[:-1]]
    tagged = (isinstance(first[-1], str) and any(c in first[-1] for c in "-[")) or \
        first[-1] in ("int", "float", "bool", "str")
    return [e["msg"] for e in same] if same and tagged else []


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


def fields_at(model: type[BaseModel], section: str) -> list[str]:
    """Field names of the model section at a dotted path ('' = top level)."""
    for part in filter(None, section.split(".")):
        sub = _submodel(model.model_fields[part].annotation) if part in model.model_fields \
            else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf field of the model as a dotted key (`opt.lr`)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        keys += dotted_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return keys


def first_line(exc: BaseException | str) -> str:
    """The first line of an error, without SQLAlchemy's '(sqlite3.X)' prefix and '[SQL: ...]'
    tail, passwords redacted."""
    from cnnexp.redact import redact_url

    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    text = re.sub(r"^\((?:[\w.]+)\)\s*", "", text)
    return redact_url(text[:300])


# MLflow words for a store that cannot be written or reached (it wraps the database's error)
_IO_WORDS = ("database or disk is full", "readonly database", "read-only", "disk i/o error",
             "unable to open database", "no space left", "file is not a database",
             "api request to", "max retries exceeded", "connection refused")


_NO_MEMORY = ("can't allocate memory", "not enough memory", "out of memory",
              "DefaultCPUAllocator", "std::bad_alloc")


def memory_failure(exc: BaseException) -> str | None:
    """A one-line reason when `exc` is an allocation the machine could not make (values the
    schema accepts can still ask for terabytes: arch.width=4096, data.resize=1024,
    data.num_samples=10**9), else None."""
    for e in _chain(exc):
        if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or (
                isinstance(e, RuntimeError) and any(m in str(e) for m in _NO_MEMORY)):
            return ("out of memory: this recipe needs more memory than the machine has "
                    f"({first_line(e)[:160]}); lower train.batch_size, arch.width, "
                    "data.resize, data.image_size or data.num_samples")
    return None


def environment_failure(exc: BaseException) -> str | None:
    """A one-line reason when `exc` is the machine's or the tracking store's fault (disk full, a
    read-only file system or database, a file that is not a database, a server gone), else
    None: a bug, whose traceback should show. Library classes are looked at only when the
    library is already loaded."""
    import errno
    import sqlite3

    io_errnos = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO,
                 errno.EACCES, errno.EPERM}
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in io_errnos:
            where = f" ({e.filename})" if e.filename else ""
            return f"{e.strerror or e}{where}"
        if isinstance(e, sqlite3.Error):
            return first_line(e)
        if isinstance(e, RuntimeError) and (written := _torch_save_target(e)) is not None:
            return _write_failure(written, e)
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import DBAPIError

        for e in _chain(exc):
            if isinstance(e, DBAPIError):
                return first_line(e.orig or e)
    if "mlflow" in sys.modules:
        from mlflow.exceptions import MlflowException, RestException

        for e in _chain(exc):
            if isinstance(e, RestException) or (
                    isinstance(e, MlflowException) and _looks_like_io(str(e))):
                return _inner_reason(e)
    return None


def _torch_save_target(exc: BaseException) -> str | None:
    """The file torch.save was writing when `exc` was raised inside it, else None. (Its C++
    writer reports a full disk as a RuntimeError: 'file write failed', 'unexpected pos',
    'iostream error'; where it was raised says more than its wording.)"""
    import os

    tb, target = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "save" and code.co_filename.endswith(
                ("torch/serialization.py", "torch\\serialization.py")):
            f = tb.tb_frame.f_locals.get("f")
            target = str(f) if isinstance(f, (str, os.PathLike)) else "?"
        tb = tb.tb_next
    return target


def _write_failure(path: str, exc: BaseException) -> str:
    import os
    import shutil

    try:
        full = shutil.disk_usage(os.path.dirname(os.path.abspath(path)) or ".").free < 16 << 20
    except OSError:
        full = False
    if full:
        return f"No space left on device (writing {path})"
    detail = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", first_line(exc))
    return f"cannot write {path} (torch.save: {detail})"


def _looks_like_io(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in _IO_WORDS)


def _inner_reason(exc: BaseException) -> str:
    """MLflow wraps a database error in a paragraph: keep the database's own words."""
    from cnnexp.redact import redact_url

    inner = re.search(r"\((?:sqlite3|psycopg[\w.]*|pymysql[\w.]*)\.\w+\)\s*([^\n\[]+)", str(exc))
    return redact_url(inner.group(1).strip()[:300]) if inner else first_line(exc)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts, each once."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__
