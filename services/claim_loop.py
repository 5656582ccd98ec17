"""One dispatcher thread and a pool: claim leased rows while a thread is free, run them.

The outbox sender and the inbox worker both work this way; what a row is, how it is
claimed and what running it means is theirs.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL = 0.5  # seconds between looks when nobody in this process said there is work


class ClaimLoop(Generic[T]):
    def __init__(self, name: str, claim: Callable[[int], list[T]], run: Callable[[T], object],
                 workers: int, gather: float = 0.0,
                 unblocks: Callable[[T], bool] = lambda _item: True):
        """gather: while there is a backlog, wait this long for more threads to come free
        before claiming, so that a backlog is claimed a few rows at a time rather than one
        claim (a transaction) per finished row.

        unblocks: whether an item's end may make rows claimable that the last claim could
        not take (the next message of its queue; clicks held back while a batch was being
        decided). Only then does its end look again: a claim is a write transaction, and
        on SQLite it takes the write lock that the acknowledgements wait for."""
        self.name = name
        self._claim = claim
        self._run = run
        self._unblocks = unblocks
        self.workers = workers
        self.gather = gather
        self._backlog = False  # the last claim filled every free thread
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._free = threading.Semaphore(workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._thread = threading.Thread(target=self._dispatch, name=name, daemon=True)

    def start(self) -> "ClaimLoop[T]":
        self._thread.start()
        return self

    def wake(self) -> None:
        """There may be work now (a commit in this process, a nudge from the web one)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Claim nothing more; what is running finishes (the rest waits for the next start)."""
        self._stopping.set()
        self._wake.set()
        self._free.release()  # the dispatcher may be waiting for a free thread
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _dispatch(self) -> None:
        while True:
            slots = self._take_free_slots()
            if self._stopping.is_set():
                return
            self._wake.clear()
            try:
                claimed = self._claim(slots)
            except SQLAlchemyError as exc:  # the database is away: look again shortly
                log.warning("%s: could not claim work: %s", self.name, exc)
                claimed = []
            self._backlog = len(claimed) == slots
            for _ in range(slots - len(claimed)):
                self._free.release()
            for item in claimed:
                self._pool.submit(self._run_and_free, item)
            if len(claimed) < slots:  # every due row was taken: wait until there may be more
                self._wake.wait(POLL)

    def _take_free_slots(self) -> int:
        """Wait for one idle thread, then take every idle one (with a backlog, those that
        come free within `gather` too)."""
        self._free.acquire()
        slots = 1
        until = time.monotonic() + (self.gather if self._backlog else 0.0)
        while slots < self.workers:
            wait = until - time.monotonic()
            if not (self._free.acquire(blocking=False)
                    or wait > 0 and self._free.acquire(timeout=wait)):
                break
            slots += 1
        return slots

    def _run_and_free(self, item: T) -> None:
        try:
            self._run(item)
        except Exception:  # the row's lease runs out and it is tried again; say why now
            log.exception("%s: running %r failed", self.name, item)
        finally:
            self._free.release()
            if self._unblocks(item):
                self._wake.set()
