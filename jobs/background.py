"""The worker process's AWS pool: grants, revocations and announcements after a decision
has been committed, bounded by AWS_CONCURRENCY so that decisions never queue behind them."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Background:
    def __init__(self, workers: int = 16, hold: Callable[[], None] = lambda: None):
        """hold: called before each submitted task starts (the worker's
        DecisionsFirst.hold: a burst of decisions first, then the AWS work they owe)."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accessbot-bg")
        self._hold = hold

    def submit(self, fn: Callable, *args) -> Future:
        future = self._pool.submit(self._after_hold, fn, *args)
        future.add_done_callback(self._report)
        return future

    def call(self, fn: Callable, *args) -> Future:
        """One AWS call whose caller waits for its result, and handles its error."""
        return self._pool.submit(fn, *args)

    def _after_hold(self, fn: Callable, *args):
        self._hold()
        return fn(*args)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    @staticmethod
    def _report(future: Future) -> None:
        # The database keeps what should happen, and the sweep finishes it; the error
        # itself must still be seen.
        error = future.exception()
        if error is not None:
            log.error("background task failed", exc_info=error)


class RevocationsFirst:
    """In the worker, access being taken away goes before the messages about it.

    While grants are being revoked (their AWS calls made and recorded), the sender starts
    nothing new, for at most HOLD seconds from the moment revoking began: when many
    grants end together, the sender's threads (hundreds of "your access ended" DMs and
    copy updates) took the interpreter from the revocations, and the last removals ran
    later (`make bench`, phase 4). Revocations that never stop (grants ending one after
    the other for minutes) hold the messages up once, for HOLD, not at every turn.
    """

    HOLD = 2.0  # seconds: the longest messages wait for a stretch of revocations

    def __init__(self, hold: float = HOLD, clock: Callable[[], float] = time.monotonic):
        self._hold = hold
        self._clock = clock
        self._lock = threading.Lock()
        self._running = 0
        self._since = 0.0  # when the current stretch of revocations began
        self._idle = threading.Event()
        self._idle.set()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around one group of revocations (services/runner.revoke_grants)."""
        with self._lock:
            if not self._running:
                self._since = self._clock()
            self._running += 1
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if not self._running:
                    self._idle.set()

    def hold(self) -> None:
        """The sender's: wait while grants are being revoked, until HOLD seconds after
        the stretch began."""
        with self._lock:
            left = self._since + self._hold - self._clock() if self._running else 0.0
        if left > 0:
            self._idle.wait(left)
