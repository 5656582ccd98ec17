"""The worker process's AWS pool: grants, revocations and announcements after a decision
has been committed, bounded by AWS_CONCURRENCY so that decisions never queue behind them."""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

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
