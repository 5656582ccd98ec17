"""Keep and Remove of the access review: a signed click through the app hands over the id,
the clicker and the channel; the worker's task decides once and answers the clicker."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.handlers.ids import ActionId
from accessbot.handlers.tasks import ReplyTo, Task
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import InboxStatus, ReviewItem, ReviewStatus
from accessbot.services.outbox import Kind
from accessbot.services.review_runner import ReviewRunner, ReviewSide
from tests.factories import APPROVER
from tests.fakes.hygiene import FakeAccount, FakeOwners
from tests.fakes.outbox import Mailroom
from tests.fakes.review import FakeStanding
from tests.handlers.slack_requests import RESPONSE_URL, click, dispatch
from tests.handlers.test_work import claim, record, status_of

URL = "https://hooks.slack.test/r/9"


@pytest.mark.parametrize("action_id, task", [(ActionId.REVIEW_KEEP, Task.REVIEW_KEEP),
                                             (ActionId.REVIEW_REMOVE, Task.REVIEW_REMOVE)])
def test_a_review_click_hands_over_the_id_the_clicker_and_the_channel(app, handoffs,
                                                                      action_id, task):
    response = dispatch(app, click(action_id, "7"))
    assert response.status == 200
    assert handoffs.tasks == [(task, "7", APPROVER, "C0APPROVALS",
                               ReplyTo(APPROVER, RESPONSE_URL))]


def test_a_review_click_with_a_value_that_is_not_an_id_gets_400(app, handoffs):
    assert dispatch(app, click(ActionId.REVIEW_REMOVE, "drop table")).status == 400
    assert handoffs.tasks == []


@pytest.fixture
def standing():
    return FakeStanding(groups={"prod-admins": {"carol", "erin"}})


@pytest.fixture
def review(sessions, catalog, clock, standing):
    runner = ReviewRunner(sessions, catalog, {"": ReviewSide(standing, FakeAccount(),
                                                             FakeOwners())}, clock=clock)
    runner.review()
    return runner


@pytest.fixture
def work(sessions, catalog, clock, review):
    return Work(WorkDeps(sessions, catalog, None, None, None, clock, None, "worker-1", review))


def item(sessions, principal: str) -> ReviewItem:
    with sessions() as session:
        return session.scalar(select(ReviewItem).where(ReviewItem.principal == principal))


def test_remove_runs_in_the_worker_and_answers_the_clicker(work, sessions, catalog, clock,
                                                           standing):
    carol = item(sessions, "carol").id
    record(sessions, clock, Task.REVIEW_REMOVE, str(carol), APPROVER, None,
           ReplyTo(APPROVER, URL))
    clock.advance(seconds=1)
    work.run(claim(sessions, clock)[0])
    assert standing.groups["prod-admins"] == {"erin"}
    assert item(sessions, "carol").status is ReviewStatus.REMOVED
    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert reply["response_url"] == URL and reply["text"].startswith("Removed: IAM user carol")
    assert status_of(sessions) == [InboxStatus.DONE]


def test_keep_by_someone_else_is_refused_and_the_task_done(work, sessions, catalog, clock):
    erin = item(sessions, "erin").id
    record(sessions, clock, Task.REVIEW_KEEP, str(erin), "U0MALLORY", None,
           ReplyTo("U0MALLORY", URL))
    work.run(claim(sessions, clock)[0])
    assert item(sessions, "erin").status is ReviewStatus.OPEN
    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert "Only <@U0BOB>, <@U0DAVE> can decide" in reply["text"]
    assert status_of(sessions) == [InboxStatus.DONE]


def test_keep_then_a_second_keep_is_told_who_decided(work, sessions, catalog, clock):
    erin = item(sessions, "erin").id
    for who in (APPROVER, "U0DAVE"):
        record(sessions, clock, Task.REVIEW_KEEP, str(erin), who, None, ReplyTo(who, URL))
        clock.advance(seconds=1)
        work.run(claim(sessions, clock)[0])
    assert item(sessions, "erin").status is ReviewStatus.KEPT
    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert "Already decided by <@U0BOB>: kept" in reply["text"]
    assert status_of(sessions) == [InboxStatus.DONE, InboxStatus.DONE]
    assert clock() - item(sessions, "erin").decided_at <= timedelta(seconds=2)
