"""Opening the tracking store, once per process and URI: a store that cannot be used is one line
of bad input before any work, never a traceback or minutes of silent retries.

- An http(s) server or a database server is probed first with a short timeout (MLflow itself
  retries a refused connection for about 100 s before it says anything).
- A SQLite store is created and migrated under an exclusive lock on a file beside the .db
  (`mlflow.db.lock`): MLflow migrates a fresh database without one, so two processes starting
  on a new store would both run the migration and break it for good.
- Anything else MLflow cannot open (an unknown scheme, a file that is not a database, a store
  it cannot read) is named with the reason.
- A SQLite store runs in write-ahead-log mode with synchronous=NORMAL: a commit appends to
  the log without waiting for the disk (fsync happens at checkpoints), where the default
  rollback journal waits for several fsyncs per commit; a run writes ~25 commits. Measured:
  ~8-10 ms a commit before, ~5-6 after; on a busy disk the fsyncs also made tracked runs'
  times vary. SQLite documents WAL + NORMAL as safe from corruption; what a power cut (not a
  crash of the process) can lose is the last commits. New stores are made in WAL mode and
  older ones are switched when opened (where the file can be written).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from mlflow import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from cnnexp.errors import BadInput, environment_failure, first_line
from cnnexp.redact import redact_url

PROBE_SECONDS = 5  # a server that does not answer within this is reported unreachable
SQL_SCHEMES = ("postgresql", "postgres", "mysql", "mssql")
SQLITE_HEADER = b"SQLite format 3\x00"
# what MLflow 3 can track to ('' is a local path); a one-letter scheme is a Windows drive
SCHEMES = ("", "file", "sqlite", *SQL_SCHEMES, "http", "https", "databricks", "databricks-uc",
           "uc")

_opened: set[str] = set()


def shown(uri: str) -> str:
    """The URI as it may be printed: without its password."""
    return redact_url(uri)


def open_client(uri: str) -> MlflowClient:
    """A client on `uri`; the first call per process checks and initialises the store."""
    if uri in _opened:
        return MlflowClient(uri)
    scheme = _check_form(uri)
    if scheme in ("http", "https"):
        _probe_http(uri)
    elif scheme.split("+")[0] in SQL_SCHEMES:
        _probe_sql(uri)
    db = sqlite_file(uri)
    try:
        with _init_lock(db):
            if db is not None:
                _check_sqlite_file(uri, db)
                if _is_new(db) and "?" not in uri:
                    _create_sqlite(uri, db)
                else:
                    use_wal(db)
            c = MlflowClient(uri)  # a SQL store creates and migrates its tables here
            c.search_experiments(max_results=1)
    except BadInput:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        reason = environment_failure(exc)
        if reason is None and not isinstance(exc, MlflowException):
            raise
        raise BadInput(f"cannot open the tracking store {shown(uri)}: "
                       f"{reason or first_line(exc)}") from None
    _opened.add(uri)
    return c


def _check_form(uri: str) -> str:
    """The URI's scheme; BadInput for one MLflow cannot track to, or a password holding an
    unencoded '@' (drivers would split it there and print the rest as the host)."""
    from cnnexp.errors import closest

    scheme = urlparse(uri).scheme.lower()
    if len(scheme) > 1 and scheme.split("+")[0] not in SCHEMES:
        near = closest(scheme, [s for s in SCHEMES if s], n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise BadInput(f"tracking URI {shown(uri)}: unknown scheme '{scheme}' ({hint}use "
                       "sqlite:///FILE, http(s)://HOST:PORT or postgresql://USER@HOST/DB)")
    if scheme in ("", "file") or len(scheme) == 1:  # a folder (or C:\ on Windows)
        raise BadInput(f"tracking URI {shown(uri)}: MLflow's folder store is in maintenance "
                       "mode and refuses new runs; use a database file instead, e.g. "
                       f"sqlite:///{_folder_db(uri)}")
    if scheme == "sqlite" and sqlite_file(uri) is None:
        raise BadInput(f"tracking URI {shown(uri)}: an in-memory SQLite database keeps nothing "
                       "after the command ends (and MLflow cannot use it); use "
                       "sqlite:///mlflow.db (a file)")
    authority = uri.split("://", 1)[1].split("/", 1)[0] if "://" in uri else ""
    if authority.count("@") > 1:
        raise BadInput(f"tracking URI {shown(uri)}: its password holds '@': write it as %40")
    return scheme


def _folder_db(uri: str) -> str:
    """Where the database of a folder-store URI would live: FOLDER/mlflow.db."""
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()
    return str(path.resolve() / "mlflow.db") if path.suffix != ".db" else str(path.resolve())


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite: URI (None for other stores and in-memory databases)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception as exc:
        raise BadInput(f"malformed tracking URI {shown(uri)}: {first_line(exc)}") from None
    database = url.database or ""
    if url.query.get("uri") and database.startswith("file:"):
        database = database[len("file:"):]
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def _init_lock(db: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on `<db>.lock` (POSIX; a no-op elsewhere or where the folder
    cannot be written: such a store must already exist to be usable)."""
    if db is None or os.name == "nt":
        yield
        return
    import fcntl

    lock = db.with_name(db.name + ".lock")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _is_new(db: Path) -> bool:
    try:
        return db.stat().st_size == 0
    except FileNotFoundError:
        return True


def _create_sqlite(uri: str, db: Path) -> None:
    """Create and migrate a new SQLite store under a temporary name (from the cached template
    when there is one: tracking.template), then rename it into place: a migration cut short
    (disk full, Ctrl-C) leaves no half-built store behind, which MLflow could never open
    again ('table _alembic_tmp_... already exists')."""
    from cnnexp.tracking.template import build

    tmp = db.with_name(f".{db.name}.creating-{os.getpid()}")
    try:
        build(tmp)
        use_wal(tmp)
        os.replace(tmp, db)
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


def use_wal(db: Path) -> None:
    """Switch a SQLite store to write-ahead logging (persistent in the file). Never fatal: a
    store that cannot be written or is busy keeps its mode (and says why when written to)."""
    import sqlite3

    if not db.is_file():
        return
    try:
        with sqlite3.connect(db, timeout=1.0) as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
    except sqlite3.Error:
        pass


@event.listens_for(Engine, "connect")
def _sqlite_sync_normal(dbapi_connection: object, _record: object) -> None:
    """Every SQLite connection to a WAL store (MLflow's included): commit without fsync."""
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        pass
    finally:
        cursor.close()


def _check_sqlite_file(uri: str, db: Path) -> None:
    if db.is_dir():
        raise BadInput(f"tracking store {shown(uri)}: {db} is a folder, not a SQLite file")
    try:
        with db.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BadInput(f"cannot read the tracking store {shown(uri)}: {exc.strerror}") from None
    if head and head != SQLITE_HEADER:
        raise BadInput(f"tracking store {shown(uri)}: {db} is not a SQLite database (point "
                       "MLFLOW_TRACKING_URI at an MLflow store, or at a new file)")


def _probe_http(uri: str) -> None:
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS)
    except requests.RequestException as exc:
        raise BadInput(f"cannot reach the tracking server {shown(uri)} within "
                       f"{PROBE_SECONDS} s: {_network_reason(exc)}") from None


def _probe_sql(uri: str) -> None:
    """Connect once with a timeout (MLflow would retry for ~100 s before failing)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    args = {"connect_timeout": PROBE_SECONDS} if uri.startswith(("postgres", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=args)
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as exc:
        raise BadInput(f"tracking store {shown(uri)} needs the Python package '{exc.name}' "
                       "(for PostgreSQL: pip install 'cnnexp[postgres]')") from None
    except Exception as exc:
        raise BadInput(f"cannot open the tracking store {shown(uri)}: "
                       f"{first_line(getattr(exc, 'orig', None) or exc)}") from None


def _network_reason(exc: Exception) -> str:
    """'Connection refused' rather than urllib3's nested repr."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found[-1].strip()
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    return first_line(exc)
