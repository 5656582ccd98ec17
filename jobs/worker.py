"""The worker process: all the work after an acknowledgement, and the scheduler.

`python bot.py` runs as two processes. The web process answers Slack and does nothing
else; the worker, which it starts, runs what listeners hand over, the timers and the
periodic jobs. Two processes rather than two thread pools because threads in one
interpreter take turns for one lock: twenty requests' background work (20-30 ms of CPU
each) held the acknowledgements of the same burst to 60-70 ms (`make bench`). Between
processes the kernel decides, and the worker runs at a lower priority.

What a listener acknowledged is an inbox row in the database (handlers/handoff.py);
the link between the processes is one pipe, web -> worker, that only nudges the worker
to look at once (a lost nudge costs a poll interval). If the web process dies, the
kernel kills the worker with it (Linux), or else the worker reads end-of-file and exits
at once, as if it had crashed with it; if the worker dies, the web process stops too,
so that whatever supervises accessbot restarts both.
Either way the database holds what was acknowledged and decided, and the next start
finishes it.
"""

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

NICENESS = 10  # the worker's priority below the web process (nice(1)); 0 turns it off
STOP = None  # the message that ends the worker's loop
WAKE = "wake"  # the pipe's one message: tasks were recorded in the inbox (their names)


def worker_main(settings, tasks: Connection, ready, go) -> None:
    """The worker process's entry. The web process names it without importing what the
    worker needs (boto3, APScheduler...): jobs/process.py is imported here, in the worker,
    while the web process migrates the database; nothing is touched until `go` is set
    (WorkerProcess.start)."""
    die_with_parent()
    from accessbot.jobs.process import run_worker

    parent = multiprocessing.parent_process()
    while not go.wait(0.5):
        if parent is not None and not parent.is_alive():
            return  # the start failed, or the web process died (not Linux: no PDEATHSIG)
    run_worker(settings, tasks, ready)


class WorkerFailed(Exception):
    """The worker process could not start, or is gone."""


class WorkerProcess:
    """The web process's handle on its worker: start it, hand it tasks, stop it.

    Only the watching thread waits on the process (two threads waiting on one child race
    to reap it, and the loser takes it for alive); everything else reads its events.
    """

    def __init__(self, target: Callable[..., None], *args, on_exit: Callable[[int], None]):
        """`target(*args, tasks, ready, go)` runs in the worker: it reads tasks from the
        pipe, sets `ready` once it serves them, and touches nothing before `go` is set."""
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, no fork surprises
        reader, self._writer = context.Pipe(duplex=False)
        self._ready = context.Event()
        self._go = context.Event()
        self._process = context.Process(target=target, name="worker",
                                        args=(*args, reader, self._ready, self._go))
        self._reader = reader
        self._lock = threading.Lock()  # many server threads hand over through one pipe
        self._exited = threading.Event()
        self._stopping = False
        self._on_exit = on_exit

    def launch(self) -> None:
        """Start the worker's process, which waits for `start`: its interpreter and imports
        take a second of CPU, which the caller can spend on something else (serve: the
        migration)."""
        self._process.start()
        self._reader.close()  # only the worker holds the reading end: it sees EOF if we die
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()

    def start(self, timeout: float = 120.0) -> None:
        """Let the worker go (launching it first if need be) and wait until it is ready
        (its scheduler running)."""
        if self._process.pid is None:
            self.launch()
        self._go.set()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self._exited.is_set() or time.monotonic() > deadline:
                self._end()
                raise WorkerFailed(f"the worker process did not start (exit code "
                                   f"{self._process.exitcode}); its error is in the log above")

    def running(self) -> bool:
        return self._ready.is_set() and not self._exited.is_set()

    def handoff(self, task: str, *args) -> None:
        try:
            with self._lock:
                self._writer.send((task, args))
        except OSError as exc:
            raise WorkerFailed(f"cannot hand {task} to the worker: {exc}") from exc

    def stop(self, timeout: float) -> None:
        """Tell the worker to finish what it has started (for `timeout` s, DRAIN_SECONDS),
        wait for it, then make sure."""
        self._stopping = True
        try:
            with self._lock:
                self._writer.send(STOP)
        except OSError:
            pass  # gone already
        if not self._exited.wait(timeout):
            log.warning("the worker did not stop within %.0f s; terminating it", timeout)
            self._end()

    def abandon(self) -> None:
        """A launched worker that will not be started after all."""
        self._end()

    def _end(self) -> None:
        self._stopping = True
        self._process.terminate()
        if not self._exited.wait(5):
            self._process.kill()
            self._exited.wait(5)

    def _watch(self) -> None:
        self._process.join()
        self._exited.set()
        if self._ready.is_set() and not self._stopping:
            log.error("the worker process exited (code %s); stopping accessbot so that it is "
                      "restarted whole", self._process.exitcode)
            self._on_exit(self._process.exitcode or 1)


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> None:
    """In the worker, first: on Linux the kernel kills it the moment the web process dies.

    Reading end-of-file takes the worker's turn on the CPU; meanwhile its sender could
    still post to Slack after a kill -9 of the web process, and be cut off before marking
    the row sent, while the restarted bot already runs. (The signal follows the thread that
    started the worker: serve() starts it from the main thread.)
    """
    if not sys.platform.startswith("linux"):
        return
    parent = multiprocessing.parent_process()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d)", ctypes.get_errno())
    if parent is not None and os.getppid() != parent.pid:  # it died before the prctl
        os._exit(1)


def serve_tasks(tasks: Connection, run: Callable[[str, tuple], None]) -> None:
    """In the worker: pass each nudge on until told to stop.

    If the web process is gone (end-of-file), the worker exits at once, unclean as a crash:
    finishing its work could race the restarted bot, and the database makes it safe.
    """
    while True:
        try:
            message = tasks.recv()
        except EOFError:
            log.error("the web process is gone; the worker exits with it")
            logging.shutdown()
            os._exit(1)
        if message is STOP:
            return
        task, args = message
        run(task, args)
