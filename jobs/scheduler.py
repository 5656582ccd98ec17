"""APScheduler wiring: the periodic jobs and one exact-time timer per grant."""

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from accessbot.handlers import memory
from accessbot.jobs.registry import PERIODIC, Job, JobContext, run_due
from accessbot.services import metrics

log = logging.getLogger(__name__)


class SchedulerTimers:
    """services.ports.Timers on APScheduler date jobs; the sweep is the safety net."""

    def __init__(self, scheduler: BackgroundScheduler, jobs: dict[str, Callable[[int], object]]):
        self.scheduler = scheduler
        self.jobs = jobs

    def schedule(self, job: str, grant_id: int, when: datetime) -> None:
        self.scheduler.add_job(
            self.jobs[job], "date", run_date=when, args=[grant_id], id=f"{job}:{grant_id}",
            replace_existing=True, misfire_grace_time=None, coalesce=True,
        )

    def cancel(self, job: str, grant_id: int) -> None:
        job_id = f"{job}:{grant_id}"
        if self.scheduler.get_job(job_id) is not None:
            self.scheduler.remove_job(job_id)


class Together:
    """Timers that fire at about the same moment become one call with all their grants.

    The first timer's thread waits `gather` seconds for the others, then runs the batch;
    the others only add their grant and return. (200 grants approved in one burst expire
    in one burst: one transaction leases them all, instead of 200 contending.)
    """

    def __init__(self, run: Callable[[list[int]], object], gather: float = 0.02):
        self._run = run
        self._gather = gather
        self._lock = threading.Lock()
        self._waiting: list[int] = []

    def __call__(self, grant_id: int) -> None:
        with self._lock:
            self._waiting.append(grant_id)
            if len(self._waiting) > 1:
                return  # the first of them runs it
        time.sleep(self._gather)
        with self._lock:
            batch, self._waiting = self._waiting, []
        self._run(batch)


def make_scheduler(workers: int = 16) -> BackgroundScheduler:
    return BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )


def add_periodic_jobs(scheduler: BackgroundScheduler, context: JobContext,
                      intervals: dict[str, timedelta]) -> None:
    for job in PERIODIC:
        if job.period is not None and not _scheduled(job, context):
            continue  # hygiene.enabled: false (run-job still runs them by hand)
        every = intervals.get(job.name, job.every)
        scheduler.add_job(_measured(job.name, _when_due(job, context) if job.period
                                    else job.run), "interval",
                          seconds=every.total_seconds(), args=[context], id=job.name,
                          replace_existing=True, next_run_time=datetime.now().astimezone())


def _scheduled(job: Job, context: JobContext) -> bool:
    if context.hygiene is None:
        return False
    if job.scheduled is not None:
        return job.scheduled(context)
    return context.hygiene.settings.enabled


def _measured(name: str, run: Callable[[JobContext], object]) -> Callable[[JobContext], object]:
    """Count each run of a periodic job and time it (GET /metrics)."""

    def measured(context: JobContext):
        started = time.perf_counter()
        try:
            result = run(context)
        except BaseException:
            metrics.JOB_RUNS.labels(name, "error").inc()
            raise
        finally:
            metrics.JOB_SECONDS.labels(name).observe(time.perf_counter() - started)
        metrics.JOB_RUNS.labels(name, "skipped" if result is None else "ok").inc()
        return result

    return measured


def _when_due(job: Job, context: JobContext) -> Callable[[JobContext], object]:
    hygiene = context.hygiene

    def run(context: JobContext):
        result = run_due(job, context, job.period(hygiene.settings))
        if result is not None:
            log.info("%s: %s", job.name, result)
            memory.give_back()  # a heavy job (a credential report, an audit) has ended
        return result

    return run
