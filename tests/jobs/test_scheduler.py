"""Which periodic jobs the worker schedules."""

from types import SimpleNamespace

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from accessbot.jobs.registry import JobContext
from accessbot.jobs.scheduler import add_periodic_jobs
from accessbot.services.catalog import parse_catalog
from tests.conftest import CATALOG

HYGIENE_JOBS = {"stale-credentials", "hygiene-summary", "account-audit"}


@pytest.mark.parametrize("enabled", [True, False])
def test_hygiene_enabled_false_schedules_no_hygiene_job(enabled):
    hygiene = parse_catalog({**CATALOG, "hygiene": {"enabled": enabled}}).hygiene
    scheduler = BackgroundScheduler()
    context = JobContext(runner=None, refresh_directory=lambda: None,
                         hygiene=SimpleNamespace(settings=hygiene))
    add_periodic_jobs(scheduler, context, {})
    scheduled = {job.id for job in scheduler.get_jobs()}
    assert "sweep" in scheduled
    assert (scheduled & HYGIENE_JOBS) == (HYGIENE_JOBS if enabled else set())


@pytest.mark.parametrize("bucket", [None, "evidence"])
def test_the_audit_chain_is_always_sealed_and_uploaded_only_with_a_bucket(bucket):
    catalog = parse_catalog({**CATALOG, "hygiene": {"enabled": False},
                             "audit": {"s3_bucket": bucket} if bucket else {}})
    scheduler = BackgroundScheduler()
    context = JobContext(runner=None, refresh_directory=lambda: None,
                         hygiene=SimpleNamespace(settings=catalog.hygiene),
                         audit_archiver=object() if catalog.audit.s3_bucket else None)
    add_periodic_jobs(scheduler, context, {})
    scheduled = {job.id for job in scheduler.get_jobs()}
    assert "seal-audit" in scheduled
    assert ("audit-s3-export" in scheduled) == (bucket is not None)


def test_timers_that_fire_together_run_as_one_batch():
    import threading

    from accessbot.jobs.scheduler import Together

    batches, gate = [], threading.Barrier(5)
    together = Together(batches.append, gather=0.2)

    def fire(grant_id: int) -> None:
        gate.wait()
        together(grant_id)

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    together(9)  # later: a batch of its own

    assert [sorted(batch) for batch in batches] == [[0, 1, 2, 3, 4], [9]]


@pytest.mark.parametrize("delay, every", [("15m", 60), ("1s", 1), ("30s", 30)])
def test_ended_grants_are_looked_for_every_minute_or_every_delay(delay, every):
    from accessbot.jobs.process import _activity_interval

    catalog = parse_catalog({**CATALOG, "cloudtrail": {"delay": delay}})
    assert _activity_interval(catalog).total_seconds() == every


def test_grant_activity_is_a_periodic_job():
    scheduler = BackgroundScheduler()
    add_periodic_jobs(scheduler, JobContext(runner=None, refresh_directory=lambda: None,
                                            hygiene=None), {})
    assert "grant-activity" in {job.id for job in scheduler.get_jobs()}
