"""jobs/worker.py with real processes: hand-over, start failures, and either side dying."""

import threading
import time

import pytest

from accessbot.jobs.worker import WorkerFailed, WorkerProcess, serve_tasks

# Targets run in a spawned interpreter, so they live at module level.

def record_tasks(path, tasks, ready, go):
    go.wait()
    with open(path, "a") as out:  # the file exists once the worker is ready
        ready.set()
        serve_tasks(tasks, lambda task, args: out.write(f"{task} {args!r}\n"))
        out.write("stopped\n")


def fail_at_start(tasks, ready, go):
    raise SystemExit(3)


def die_after_start(tasks, ready, go):
    ready.set()
    raise SystemExit(4)


def no_exit(code: int) -> None:
    raise AssertionError(f"on_exit called with {code}")


def test_tasks_arrive_in_order_and_stop_ends_the_worker(tmp_path):
    out = tmp_path / "tasks.txt"
    worker = WorkerProcess(record_tasks, str(out), on_exit=no_exit)
    worker.start(timeout=30)
    assert worker.running()
    worker.handoff("approve", "17", "U0BOB")
    worker.handoff("deny", "18", None)
    worker.stop(timeout=8)
    assert not worker.running()
    assert out.read_text().splitlines() == ["approve ('17', 'U0BOB')", "deny ('18', None)",
                                            "stopped"]


def test_a_launched_worker_waits_until_it_is_started(tmp_path):
    """serve launches the worker before its migration; the worker touches nothing before
    start() says the database is ready."""
    out = tmp_path / "tasks.txt"
    worker = WorkerProcess(record_tasks, str(out), on_exit=no_exit)
    worker.launch()
    try:
        time.sleep(1.5)  # long enough for a spawned interpreter to have run record_tasks
        assert not worker.running() and not out.exists()
        worker.start(timeout=30)
        assert worker.running() and out.exists()
    finally:
        worker.stop(timeout=8)


def test_a_worker_that_cannot_start_is_reported_at_once():
    worker = WorkerProcess(fail_at_start, on_exit=no_exit)
    started = time.monotonic()
    with pytest.raises(WorkerFailed, match="exit code 3"):
        worker.start(timeout=60)
    assert time.monotonic() - started < 20  # not the whole timeout


def test_a_worker_that_dies_is_reported_and_takes_no_more_tasks():
    exits = []
    gone = threading.Event()
    worker = WorkerProcess(die_after_start,
                           on_exit=lambda code: (exits.append(code), gone.set()))
    worker.start(timeout=30)
    assert gone.wait(10)
    assert exits == [4]
    assert not worker.running()
    with pytest.raises(WorkerFailed, match="cannot hand approve to the worker"):
        worker.handoff("approve", "17", "U0BOB")


def test_a_killed_worker_that_nobody_reaped_counts_as_dead():
    """A crash's leases are taken over at once (jobs/process.py) only if its dead worker is
    seen as dead: a zombie still answers signal 0."""
    import os
    import subprocess
    from pathlib import Path

    from accessbot.jobs.process import _pid_alive

    child = subprocess.Popen(["sleep", "60"])
    try:
        assert _pid_alive(child.pid)
        os.kill(child.pid, 9)  # not reaped yet: a zombie
        deadline = time.monotonic() + 5
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not _pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not _pid_alive(child.pid)
