"""Approval policy at the Slack edge: "Approve for less…" (the click, the modal, its
submission) through signed requests, and the worker's side of N-of-M and user groups."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.tasks import ReplyTo, Task, encode_args
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import Grant, RequestApproval, RequestStatus, transaction
from accessbot.services import inbox
from accessbot.services.runner import AccessRunner
from tests.factories import APPROVER, OTHER_APPROVER, create_request, load_request, make_catalog
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider, FakeUserGroups
from tests.handlers.slack_requests import RESPONSE_URL, click, dispatch, submission

THIRD = "U0CAROL"


def duration_field(text: str | None) -> dict:
    return {BlockId.DURATION: {ActionId.DURATION_INPUT: {"type": "plain_text_input",
                                                         "value": text}}}


def test_approve_for_less_hands_over_the_modal_with_its_trigger(app, handoffs):
    response = dispatch(app, click(ActionId.APPROVE_LESS, "42"))

    assert response.status == 200
    assert handoffs.tasks == [(Task.ASK_APPROVE_DURATION, "42", APPROVER, "trigger-2",
                               ReplyTo(APPROVER, RESPONSE_URL))]


def test_the_modal_hands_over_the_approved_duration(app, handoffs):
    response = dispatch(app, submission(ViewId.APPROVE_LESS_FORM, duration_field("30m"),
                                        user=APPROVER, private_metadata="42:7200"))

    assert response.status == 200 and response.body == ""
    assert handoffs.tasks == [(Task.APPROVE_LESS, "42", APPROVER, 1800.0, ReplyTo(APPROVER))]


@pytest.mark.parametrize("typed, metadata, said", [
    ("soon", "42:7200", "not a duration"),
    (None, "42:7200", "not a duration"),
    ("3h", "42:7200", "At most the 2h asked"),
    ("30m", "42", "out of date"),
    ("30m", "x:7200", "not valid"),
])
def test_bad_input_is_answered_in_the_modal_and_changes_nothing(app, handoffs, typed,
                                                                metadata, said):
    response = dispatch(app, submission(ViewId.APPROVE_LESS_FORM, duration_field(typed),
                                        user=APPROVER, private_metadata=metadata))

    body = json.loads(response.body)
    assert body["response_action"] == "errors"
    assert said in body["errors"][BlockId.DURATION]
    assert handoffs.tasks == []


class Views:
    """The Slack client's views.open, recorded."""

    def __init__(self):
        self.opened: list[tuple[str, dict]] = []

    def views_open(self, trigger_id: str, view: dict) -> None:
        self.opened.append((trigger_id, view))


@pytest.fixture
def two_of_two():
    return make_catalog({"prod-admins": {"approvers": [APPROVER, OTHER_APPROVER, "S0SRE"],
                                         "approvals_required": 2}})


@pytest.fixture
def aws_calls():
    return []


@pytest.fixture
def views():
    return Views()


def make_work(sessions, catalog, clock, aws_calls, client=None, groups=None) -> Work:
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory(), FakeProfiles(),
                          clock=clock, owner="w")
    return Work(WorkDeps(sessions, catalog, runner, None, client, clock,
                         lambda fn, *args: aws_calls.append((fn.__name__, args)), "worker-1",
                         groups=groups))


def run(sessions, clock, work: Work, task: Task, *args) -> None:
    with transaction(sessions) as session:
        inbox.add(session, task.value, encode_args(args), clock())
    with transaction(sessions) as session:
        claimed = inbox.claim(session, "worker-1", clock(), 10)
    work.run_all(claimed)


def grant_of(sessions, request_id) -> Grant | None:
    with sessions() as session:
        return session.scalar(select(Grant).where(Grant.request_id == request_id))


def test_the_worker_opens_the_modal_for_an_approver_only(sessions, catalog, clock, aws_calls,
                                                         views):
    work = make_work(sessions, catalog, clock, aws_calls, views)
    request_id = create_request(sessions, catalog, clock())

    run(sessions, clock, work, Task.ASK_APPROVE_DURATION, str(request_id), "U0EVE", "t-1",
        ReplyTo("U0EVE"))
    assert views.opened == []
    run(sessions, clock, work, Task.ASK_APPROVE_DURATION, str(request_id), APPROVER, "t-2",
        ReplyTo(APPROVER))

    [(trigger, view)] = views.opened
    assert trigger == "t-2"
    assert (view["callback_id"], view["private_metadata"]) == (
        ViewId.APPROVE_LESS_FORM, f"{request_id}:7200")


def test_the_submitted_duration_is_granted(sessions, catalog, clock, aws_calls):
    work = make_work(sessions, catalog, clock, aws_calls)
    request_id = create_request(sessions, catalog, clock())

    run(sessions, clock, work, Task.APPROVE_LESS, str(request_id), APPROVER, 1800.0,
        ReplyTo(APPROVER))

    grant = grant_of(sessions, request_id)
    assert grant.expires_at - grant.starts_at == timedelta(minutes=30)
    assert aws_calls == [("apply_grant", (grant.id,))]


def test_a_first_of_two_approval_grants_nothing_and_the_second_does(sessions, two_of_two,
                                                                    clock, aws_calls):
    work = make_work(sessions, two_of_two, clock, aws_calls)
    request_id = create_request(sessions, two_of_two, clock())

    run(sessions, clock, work, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    assert load_request(sessions, request_id).status is RequestStatus.PENDING
    assert aws_calls == []
    run(sessions, clock, work, Task.APPROVE, str(request_id), OTHER_APPROVER,
        ReplyTo(OTHER_APPROVER))

    assert load_request(sessions, request_id).status is RequestStatus.APPROVED
    assert aws_calls == [("apply_grant", (grant_of(sessions, request_id).id,))]


def test_a_user_group_member_decides_through_the_worker(sessions, two_of_two, clock,
                                                        aws_calls):
    work = make_work(sessions, two_of_two, clock, aws_calls,
                     groups=FakeUserGroups({"S0SRE": {THIRD}}))
    request_id = create_request(sessions, two_of_two, clock())

    run(sessions, clock, work, Task.APPROVE, str(request_id), THIRD, ReplyTo(THIRD))
    run(sessions, clock, work, Task.DENY, str(request_id), APPROVER, "no", ReplyTo(APPROVER))

    request = load_request(sessions, request_id)
    assert (request.status, request.decided_by) == (RequestStatus.DENIED, APPROVER)
    with sessions() as session:
        assert session.scalars(select(RequestApproval.approver)).all() == [THIRD]
