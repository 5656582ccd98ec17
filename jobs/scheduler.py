"""APScheduler wiring: the periodic jobs and one exact-time timer per grant."""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from accessbot.jobs.registry import PERIODIC, Job, JobContext
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


def make_scheduler(workers: int = 16) -> BackgroundScheduler:
    return BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )


def add_periodic_jobs(scheduler: BackgroundScheduler, context: JobContext,
                      intervals: dict[str, timedelta]) -> None:
    for job in PERIODIC:
        if job.period is not None and (context.hygiene is None
                                       or not context.hygiene.settings.enabled):
            continue  # hygiene.enabled: false (run-job still runs them by hand)
        every = intervals.get(job.name, job.every)
        scheduler.add_job(_measured(job.name, _when_due(job, context) if job.period
                                    else job.run), "interval",
                          seconds=every.total_seconds(), args=[context], id=job.name,
                          replace_existing=True, next_run_time=datetime.now().astimezone())


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
        result = hygiene.run_if_due(job.name, job.period(hygiene.settings),
                                    lambda: job.run(context), job.first_after_a_period)
        if result is not None:
            log.info("%s: %s", job.name, result)
        return result

    return run
