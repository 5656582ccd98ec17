"""Signed clicks on Cancel and Revoke, and the Revoke form's submission, from Slack's request
through the inbox to the worker, which re-authorises the clicker against the database."""

import pytest

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.tasks import ReplyTo, Task, encode_args
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import GrantStatus, InboxStatus, RequestStatus, transaction
from accessbot.services import inbox
from accessbot.services.outbox import Kind
from accessbot.services.runner import AccessRunner
from tests.factories import (
    APPROVER,
    IAM_USER,
    REQUESTER,
    STRANGER,
    approve,
    create_request,
    load_grant,
    load_request,
    make_catalog,
)
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider
from tests.handlers.slack_requests import (
    RESPONSE_URL,
    click,
    dispatch,
    make_app,
    submission,
)
from tests.handlers.test_work import claim, status_of

ADMIN = "U0SECLEAD"


class Views:
    """views.open, as Slack's client has it: what was opened."""

    def __init__(self):
        self.opened: list[dict] = []

    def views_open(self, trigger_id: str, view: dict) -> dict:
        self.opened.append(view)
        return {"ok": True}


@pytest.fixture
def catalog():
    return make_catalog(admins=[ADMIN])


@pytest.fixture
def app(sessions, catalog, clock):
    def handoff(task, *args) -> None:  # the web process's hand-off: one inbox row
        with transaction(sessions) as session:
            inbox.add(session, task.value, encode_args(args), clock())
    return make_app(catalog, handoff)


@pytest.fixture
def views():
    return Views()


@pytest.fixture
def runner(sessions, catalog, clock):
    return AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory({REQUESTER: IAM_USER}),
                        FakeProfiles(), clock=clock, owner="w")


@pytest.fixture
def work(sessions, catalog, clock, runner, views):
    return Work(WorkDeps(sessions, catalog, runner, None, views, clock,
                         lambda fn, *args: fn(*args), "worker-1"))


def run_next(sessions, clock, work) -> Task:
    [task] = claim(sessions, clock)
    work.run(task)
    return Task(task.task)


def replies(sessions, catalog, clock) -> list[str]:
    return [r["text"] for r in Mailroom(sessions, catalog, clock).owed(Kind.REPLY)]


# -- Cancel ------------------------------------------------------------------------------

def test_the_requesters_cancel_click_cancels(app, work, sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())

    assert dispatch(app, click(ActionId.CANCEL_REQUEST, str(request_id),
                               user=REQUESTER)).status == 200
    assert run_next(sessions, clock, work) is Task.CANCEL_REQUEST

    assert load_request(sessions, request_id).status is RequestStatus.CANCELLED
    assert status_of(sessions) == [InboxStatus.DONE]


def test_a_cancel_click_from_someone_else_is_refused_by_the_worker(app, work, sessions,
                                                                   catalog, clock):
    request_id = create_request(sessions, catalog, clock())

    dispatch(app, click(ActionId.CANCEL_REQUEST, str(request_id), user=APPROVER))
    run_next(sessions, clock, work)

    assert load_request(sessions, request_id).status is RequestStatus.PENDING
    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert reply["response_url"] == RESPONSE_URL
    assert "Only <@U0ALICE> can cancel" in reply["text"]


def test_a_cancel_click_without_an_id_never_reaches_the_worker(app, sessions, clock):
    assert dispatch(app, click(ActionId.CANCEL_REQUEST, "seven", user=REQUESTER)).status == 400
    assert claim(sessions, clock) == []


# -- Revoke --------------------------------------------------------------------------------

@pytest.fixture
def grant_id(sessions, catalog, clock, runner) -> int:
    request_id = create_request(sessions, catalog, clock())
    grant_id = approve(sessions, catalog, request_id, clock())
    assert runner.apply_grant(grant_id) is not None
    return grant_id


def test_an_admins_revoke_click_opens_the_form_and_its_submission_revokes(
        app, work, views, sessions, catalog, clock, grant_id):
    assert dispatch(app, click(ActionId.REVOKE_GRANT, str(grant_id), user=ADMIN)).status == 200
    assert run_next(sessions, clock, work) is Task.ASK_REVOKE_REASON
    [form] = views.opened
    assert (form["callback_id"], form["private_metadata"]) == (ViewId.REVOKE_FORM,
                                                               str(grant_id))

    values = {BlockId.REVOKE_REASON: {ActionId.REVOKE_REASON_INPUT: {"value": "offboarding"}}}
    assert dispatch(app, submission(ViewId.REVOKE_FORM, values, user=ADMIN,
                                    private_metadata=str(grant_id))).status == 200
    assert run_next(sessions, clock, work) is Task.REVOKE_GRANT

    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.revoked_by, grant.revoke_reason) == (
        GrantStatus.REVOKED, ADMIN, "offboarding")
    assert replies(sessions, catalog, clock) == [
        f"Revoking <@{REQUESTER}>'s access to prod-admins now."]


@pytest.mark.parametrize("who, said", [(REQUESTER, "I'm done"), (STRANGER, "Only the approvers")])
def test_a_revoke_click_from_the_holder_or_a_stranger_opens_nothing(
        app, work, views, sessions, catalog, clock, grant_id, who, said):
    dispatch(app, click(ActionId.REVOKE_GRANT, str(grant_id), user=who))
    run_next(sessions, clock, work)

    assert views.opened == []
    [text] = replies(sessions, catalog, clock)
    assert said in text


def test_a_revoke_submission_is_re_authorised_in_the_worker(app, work, sessions, catalog,
                                                            clock, grant_id):
    """A forged submission (no form was opened for this user) changes nothing."""
    dispatch(app, submission(ViewId.REVOKE_FORM, {}, user=STRANGER,
                             private_metadata=str(grant_id)))
    run_next(sessions, clock, work)

    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE
    assert "Only the approvers" in replies(sessions, catalog, clock)[0]


def test_a_revoke_submission_without_a_grant_id_is_answered_in_the_form(app, sessions, clock):
    response = dispatch(app, submission(ViewId.REVOKE_FORM, {}, user=ADMIN,
                                        private_metadata="nope"))
    assert BlockId.REVOKE_REASON in response.body
    assert claim(sessions, clock) == []


def test_the_listener_hands_over_the_reason_and_a_dm_for_the_answer(catalog, handoffs):
    app = make_app(catalog, handoffs)
    values = {BlockId.REVOKE_REASON: {ActionId.REVOKE_REASON_INPUT: {"value": "done"}}}
    dispatch(app, submission(ViewId.REVOKE_FORM, values, user=APPROVER, private_metadata="4"))
    assert handoffs.tasks == [(Task.REVOKE_GRANT, "4", APPROVER, "done", ReplyTo(APPROVER))]
