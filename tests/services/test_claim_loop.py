"""The claim loop: rows claimed for free threads, run on the pool; a backlog gathered; no
claim (a write transaction) that cannot find anything."""

import threading
import time

from accessbot.services.claim_loop import ClaimLoop


class Rows:
    """A backlog of rows, each taking `seconds` to run; records every claim's size."""

    def __init__(self, count: int, seconds: float):
        self.left = list(range(count))
        self.seconds = seconds
        self.claims: list[int] = []
        self.looks = 0  # claims, those that found nothing too
        self.ran: list[int] = []
        self._lock = threading.Lock()

    def claim(self, slots: int) -> list[int]:
        with self._lock:
            self.looks += 1
            taken, self.left = self.left[:slots], self.left[slots:]
        if taken:
            self.claims.append(len(taken))
        return taken

    def run(self, row: int) -> None:
        time.sleep(self.seconds)
        with self._lock:
            self.ran.append(row)


def wait_for(condition, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def run_all(rows: Rows, gather: float) -> None:
    loop = ClaimLoop("test", rows.claim, rows.run, workers=4, gather=gather).start()
    loop.wake()
    wait_for(lambda: not rows.left and len(rows.ran) >= sum(rows.claims), seconds=10)
    loop.stop()


def test_every_row_runs_once():
    rows = Rows(40, 0.01)
    run_all(rows, gather=0.0)
    assert sorted(rows.ran) == list(range(40))


def test_a_backlog_is_claimed_several_rows_at_a_time_with_gather():
    without, with_gather = Rows(40, 0.02), Rows(40, 0.02)
    run_all(without, gather=0.0)
    run_all(with_gather, gather=0.05)

    assert sorted(with_gather.ran) == list(range(40))
    # without gathering, nearly every finished row is a claim of its own
    assert len(with_gather.claims) < len(without.claims)
    assert sum(with_gather.claims) / len(with_gather.claims) >= 2


def test_without_a_backlog_a_new_row_is_claimed_at_once():
    rows = Rows(1, 0.0)
    loop = ClaimLoop("test", rows.claim, rows.run, workers=4, gather=5.0).start()
    try:
        loop.wake()
        wait_for(lambda: rows.ran, seconds=1)
        assert rows.ran == [0]
        rows.left = [1]
        started = time.monotonic()
        loop.wake()
        wait_for(lambda: len(rows.ran) >= 2)
        assert rows.ran == [0, 1] and time.monotonic() - started < 1.0
    finally:
        loop.stop()


def test_after_a_claim_that_took_every_due_row_it_looks_again_only_when_told():
    rows = Rows(3, 0.01)
    loop = ClaimLoop("test", rows.claim, rows.run, workers=4,
                     unblocks=lambda _row: False).start()
    try:  # a loop looks once as it starts
        wait_for(lambda: len(rows.ran) == 3)
        time.sleep(0.2)  # within POLL: no look but the first
        assert rows.looks == 1 and sorted(rows.ran) == [0, 1, 2]
        rows.left = [3]
        loop.wake()  # a commit or a nudge: there may be work
        wait_for(lambda: len(rows.ran) == 4)
        assert rows.looks == 2 and rows.ran[-1] == 3
    finally:
        loop.stop()


def test_an_end_that_unblocks_rows_looks_again_at_once():
    """As the next message of a queue becomes claimable when the one before it is sent."""
    rows = Rows(1, 0.01)

    def run(row: int) -> None:
        rows.run(row)
        if row == 0:
            rows.left.append(1)  # claimable now that 0 is done

    loop = ClaimLoop("test", rows.claim, run, workers=4,
                     unblocks=lambda row: row == 0).start()
    try:  # a loop looks once as it starts
        wait_for(lambda: len(rows.ran) == 2, seconds=0.4)  # within POLL
        assert rows.ran == [0, 1] and rows.looks == 2
    finally:
        loop.stop()
