"""The access-review job: a review when review.interval has passed, else the follow-up;
run-job's version starts one now; review.enabled: false schedules nothing."""

from accessbot.jobs.registry import JOBS, JobContext
from accessbot.services.hygiene_runner import HygieneRunner
from accessbot.services.review_runner import ReviewRunner, ReviewSide
from tests.factories import make_catalog
from tests.fakes.hygiene import FakeAccount, FakeOwners
from tests.fakes.review import FakeStanding


def context(sessions, clock, **review) -> JobContext:
    catalog = make_catalog(review=review) if review else make_catalog()
    standing = FakeStanding(groups={"prod-admins": {"carol"}})
    hygiene = HygieneRunner(sessions, catalog, FakeAccount(), FakeOwners(), clock=clock,
                            owner="worker-1")
    runner = ReviewRunner(sessions, catalog, {"": ReviewSide(standing, FakeAccount(),
                                                             FakeOwners())}, clock=clock)
    return JobContext(None, lambda: None, hygiene, runner)


def test_a_review_when_due_else_the_follow_up_and_run_job_starts_one_now(sessions, clock):
    job, jobs = JOBS["access-review"], context(sessions, clock)
    first = job.run(jobs)["own"]
    assert first["new"] == 1 and "run" in first
    clock.advance(hours=1)
    assert set(job.run(jobs)["own"]) == {"account", "finished", "messages", "escalated", "closed"}
    now = job.now(jobs)["own"]
    assert "run" in now and now["new"] == 0  # carol is asked already: not twice
    clock.advance(days=30)  # review.interval
    assert "run" in job.run(jobs)["own"]


def test_review_enabled_false_schedules_nothing_but_run_job_still_runs(sessions, clock):
    job, jobs = JOBS["access-review"], context(sessions, clock, enabled=False)
    assert job.run(jobs) is None
    assert job.now(jobs)["own"]["new"] == 1
