"""One process at a time trains a run: a lease on the run, kept in a tag.

`cnnexp train` takes the lease of the run it creates and `cnnexp train --resume` must take the
lease of the run it continues; a second process is refused (bad input) while the holder lives.
The tag `cnnexp.lease` holds "HOST PID TOKEN TIME START BOOT PIDNS"; the holder rewrites it
every HEARTBEAT_SECONDS and deletes it when it stops. A lease is stale, and may be taken, when
its process is gone (cnnexp.liveness: same host, boot and pid namespace, and the pid dead or
reused by another process) or its heartbeat is older than STALE_SECONDS (another host).

Why a tag and not a lock file: the tag works for every store (SQLite, a tracking server, a
database, remote artifacts), and it shows in the UI who is training the run. MLflow has no
compare-and-set, so taking a lease is write, wait SETTLE_SECONDS, read back: of two processes
that both found the run free, only the one whose write landed last reads its own token.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cnnexp import liveness
from cnnexp.errors import BadInput
from cnnexp.tracking import tags as T
from cnnexp.tracking.store import Run

HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 90.0
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str
    beat: float  # time of the last heartbeat (seconds since the epoch)
    start: str | None = None  # the process's start time, boot id and pid namespace
    boot: str | None = None  # (cnnexp.liveness): a reused pid is not the holder
    pidns: str | None = None

    def __str__(self) -> str:
        extra = [x or "-" for x in (self.start, self.boot, self.pidns)]
        return " ".join([self.host, str(self.pid), self.token, f"{self.beat:.0f}", *extra])

    @classmethod
    def parse(cls, text: str | None) -> Holder | None:
        """The tag's text; older leases carry only the first four fields."""
        parts = (text or "").split()
        if len(parts) not in (4, 7):
            return None
        try:
            host, pid, token, beat = parts[0], int(parts[1]), parts[2], float(parts[3])
        except ValueError:
            return None
        extra = [None if x == "-" else x for x in parts[4:]] or [None, None, None]
        return cls(host, pid, token, beat, *extra)

    def alive(self, now: float | None = None) -> bool:
        if (now or time.time()) - self.beat > STALE_SECONDS:
            return False
        return liveness.alive({"host": self.host, "pid": self.pid, "start": self.start,
                               "boot": self.boot, "pidns": self.pidns})


def current(run: Run) -> Holder | None:
    return Holder.parse(run.client.get_run(run.run_id).data.tags.get(T.LEASE))


class Lease:
    """This process's lease on a run: heartbeats in a daemon thread until released."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.token = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def mine(self) -> Holder:
        me = liveness.identity()
        return Holder(me["host"], me["pid"], self.token, time.time(), me["start"], me["boot"],
                      me["pidns"])

    def _write(self) -> None:
        self.run.client.set_tag(self.run.run_id, T.LEASE, str(self.mine()))

    def acquire(self, fresh: bool = False) -> None:
        """Take the lease, or BadInput naming the live holder. `fresh`: the run was just
        created by this process, nobody else can know it yet."""
        if fresh:
            self._write()
            return
        for _ in range(3):
            self._refuse_if_held(current(self.run))
            started = time.monotonic()
            self._write()
            # a rival's write lands within about as long as ours took: wait longer than that
            time.sleep(max(SETTLE_SECONDS, 2 * (time.monotonic() - started)))
            holder = current(self.run)
            if holder is not None and holder.token == self.token:
                return
            self._refuse_if_held(holder)
        raise BadInput(f"run {self.run.run_id}: could not take it over from another process "
                       "(its lease keeps changing); try again")

    def _refuse_if_held(self, holder: Holder | None) -> None:
        if holder is None or holder.token == self.token or not holder.alive():
            return
        age = max(0.0, time.time() - holder.beat)
        raise BadInput(f"run {self.run.run_id} is being trained by another process (pid "
                       f"{holder.pid} on {holder.host}, heartbeat {age:.0f} s ago): wait for "
                       f"it or stop it; a lease without a heartbeat for {STALE_SECONDS:.0f} s "
                       "is taken over")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="cnnexp-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                holder = current(self.run)
                if holder is not None and holder.token != self.token:
                    return  # taken over after a long stall: never write over the new holder
                self._write()
            except Exception:  # the store is down: the training thread will hear of it
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            holder = current(self.run)
            if holder is not None and holder.token == self.token:
                self.run.client.delete_tag(self.run.run_id, T.LEASE)
        except Exception:  # a store that fails now: a dead pid's lease is stale anyway
            pass


@contextmanager
def held(run: Run | None, fresh: bool = False) -> Iterator[None]:
    """Hold the run's lease for the block (nothing when tracking is off)."""
    if run is None:
        yield
        return
    lease = Lease(run)
    lease.acquire(fresh)
    lease.start()
    try:
        yield
    finally:
        lease.release()
