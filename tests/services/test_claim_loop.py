"""The claim loop: rows claimed for free threads, run on the pool; a backlog gathered."""

import threading
import time

from accessbot.services.claim_loop import ClaimLoop


class Rows:
    """A backlog of rows, each taking `seconds` to run; records every claim's size."""

    def __init__(self, count: int, seconds: float):
        self.left = list(range(count))
        self.seconds = seconds
        self.claims: list[int] = []
        self.ran: list[int] = []
        self._lock = threading.Lock()

    def claim(self, slots: int) -> list[int]:
        with self._lock:
            taken, self.left = self.left[:slots], self.left[slots:]
        if taken:
            self.claims.append(len(taken))
        return taken

    def run(self, row: int) -> None:
        time.sleep(self.seconds)
        with self._lock:
            self.ran.append(row)


def run_all(rows: Rows, gather: float) -> None:
    loop = ClaimLoop("test", rows.claim, rows.run, workers=4, gather=gather).start()
    loop.wake()
    deadline = time.monotonic() + 10
    while (rows.left or len(rows.ran) < sum(rows.claims)) and time.monotonic() < deadline:
        time.sleep(0.01)
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
        deadline = time.monotonic() + 1
        while not rows.ran and time.monotonic() < deadline:
            time.sleep(0.005)
        assert rows.ran == [0]
        rows.left = [1]
        started = time.monotonic()
        loop.wake()
        while len(rows.ran) < 2 and time.monotonic() < started + 2:
            time.sleep(0.005)
        assert rows.ran == [0, 1] and time.monotonic() - started < 1.0
    finally:
        loop.stop()
