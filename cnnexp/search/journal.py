"""The default storage, an Optuna journal file: checked before use, so a user's ordinary file is
never appended to, and a line cut short by a killed writer is set aside instead of being
extended into permanent garbage by the next write."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from cnnexp.errors import BadInput

# Optuna's lock file is held for milliseconds per read or append; a lock older than this was
# left by a killed process (Optuna's default waits 30 s before breaking it)
LOCK_GRACE_SECONDS = 10
OP_CODE = "op_code"  # every journal line is a JSON object with Optuna's operation code


def backend(path: Path):  # -> optuna.storages.journal.JournalFileBackend
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    return JournalFileBackend(str(path), lock_obj=JournalFileSymlinkLock(
        str(path), grace_period=LOCK_GRACE_SECONDS))


def check_journal(path: Path, say: Callable[[str], None] = lambda text: None) -> None:
    """Refuse a file that is not an Optuna journal; set aside a torn last line."""
    if path.is_dir():
        raise BadInput(f"--storage {path}: is a folder, not a journal file")
    if not path.exists() or path.stat().st_size == 0:
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path), grace_period=LOCK_GRACE_SECONDS)
    lock.acquire()
    try:
        _check_locked(path, say)
    finally:
        lock.release()


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and OP_CODE in record


def _torn(line: bytes) -> bool:
    """The start of a record whose writer was killed: JSON that begins like one, cut off."""
    return line.lstrip().startswith(b'{"' + OP_CODE.encode()) and not _is_record(line)


def _check_locked(path: Path, say: Callable[[str], None]) -> None:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if not _is_record(lines[0]) and not (len(lines) == 1 and _torn(lines[0])):
        raise BadInput(f"--storage {path}: this file is not an Optuna journal (its first line is "
                       "not a journal record); pick a new file name, or a database URL")
    for number, line in enumerate(lines[:-1], start=1):
        if not _is_record(line):
            raise BadInput(f"--storage {path}: line {number} of the journal is damaged (not a "
                           "journal record); restore the file from a copy, or start a new one")
    last = lines[-1]
    if last.endswith(b"\n") and _is_record(last):
        return
    if not _torn(last):
        raise BadInput(f"--storage {path}: the last line of the journal is damaged (not a "
                       "journal record); restore the file from a copy, or start a new one")
    # what a writer killed mid-append leaves: set it aside (kept, not lost) and cut it off
    kept = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    kept.write_bytes(last)
    with path.open("r+b") as fh:
        fh.truncate(len(data) - len(last))
    say(f"[yellow]warning:[/] {path}: its last line was cut short (a process killed while "
        f"writing?); set aside in {kept.name} and removed from the journal")
