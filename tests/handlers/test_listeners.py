"""The web process's listeners through Bolt's app.dispatch with signed requests: what each
one acknowledges, and what it hands to the worker (handlers/work.py runs it there)."""

import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.signature import SignatureVerifier

from handlers.handoff import NOT_RECORDED, HandoffFailed
from handlers.ids import ActionId, BlockId, ViewId
from handlers.listeners import register
from handlers.work import ReplyTo, Task
from jobs.worker import WorkerFailed
from services.commands import Draft
from tests.factories import APPROVER, REQUESTER, RESOURCE

SECRET = "listener-test-secret"
RESPONSE_URL = "https://hooks.slack.test/response/1"
# what bot.py's App learns from auth.test at start, given here: no Slack in these tests
AUTHORIZED = AuthorizeResult(enterprise_id=None, team_id="T0FAKE", bot_token="xoxb-test",
                             bot_user_id="U0ACCESSBOT", bot_id="B0ACCESSBOT")


class Handoffs:
    """Records what listeners hand over; `gone` plays a worker that has died, `no_database`
    a database that cannot take the inbox row."""

    def __init__(self):
        self.tasks: list[tuple] = []
        self.gone = False
        self.no_database = False

    def __call__(self, task, *args) -> None:
        if self.gone:
            raise WorkerFailed("cannot hand it to the worker: broken pipe")
        if self.no_database:
            raise HandoffFailed("connection refused")
        self.tasks.append((task, *args))


@pytest.fixture
def handoffs():
    return Handoffs()


@pytest.fixture
def app(catalog, handoffs):
    app = App(signing_secret=SECRET, authorize=lambda **_: AUTHORIZED,
              process_before_response=True)
    register(app, catalog, handoffs)
    return app


def dispatch(app: App, body: str):
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    return app.dispatch(BoltRequest(body=body, headers={
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [timestamp], "x-slack-signature": [signature]}))


def command(text: str, user: str = REQUESTER) -> str:
    return urlencode({"command": "/request-access", "text": text, "user_id": user,
                      "team_id": "T0FAKE", "channel_id": "C0GENERAL",
                      "response_url": RESPONSE_URL, "trigger_id": "trigger-1"})


def payload(body: dict) -> str:
    return urlencode({"payload": json.dumps({"team": {"id": "T0FAKE"}, **body})})


def click(action_id: str, value: str, user: str = APPROVER) -> str:
    return payload({"type": "block_actions", "user": {"id": user}, "trigger_id": "trigger-2",
                    "response_url": RESPONSE_URL, "channel": {"id": "C0APPROVALS"},
                    "container": {"type": "message", "channel_id": "C0APPROVALS"},
                    "actions": [{"action_id": action_id, "block_id": BlockId.DECISION,
                                 "type": "button", "value": value}]})


def submission(callback_id: str, values: dict, user: str = REQUESTER,
               private_metadata: str = "") -> str:
    return payload({"type": "view_submission", "user": {"id": user},
                    "view": {"type": "modal", "callback_id": callback_id,
                             "private_metadata": private_metadata,
                             "state": {"values": values}}})


def test_a_valid_command_is_handed_over_and_acknowledged(app, handoffs):
    response = dispatch(app, command(f"{RESOURCE} 1h deploy the hotfix"))
    assert response.status == 200
    assert "Got it" in json.loads(response.body)["text"]
    [(task, user, draft, reply)] = handoffs.tasks
    assert (task, user, reply) == (Task.SUBMIT_REQUEST, REQUESTER,
                                   ReplyTo(REQUESTER, RESPONSE_URL))
    assert isinstance(draft, Draft)
    assert (draft.resource.name, draft.duration, draft.reason) == (
        RESOURCE, timedelta(hours=1), "deploy the hotfix")


@pytest.mark.parametrize("text, answer", [
    ("no-such-thing 1h why", "no-such-thing"),
    (f"{RESOURCE} 99d why", "5m to 4h"),
    (f"{RESOURCE} 1h", "reason"),
])
def test_bad_input_is_answered_at_once_and_nothing_is_handed_over(app, handoffs, text,
                                                                    answer):
    response = dispatch(app, command(text))
    assert response.status == 200
    assert answer in json.loads(response.body)["text"]
    assert handoffs.tasks == []


def test_help_needs_no_worker(app, handoffs):
    response = dispatch(app, command("help"))
    assert RESOURCE in response.body
    assert handoffs.tasks == []


def test_no_text_hands_over_the_form(app, handoffs):
    assert dispatch(app, command("")).status == 200
    [(task, trigger_id, view, reply)] = handoffs.tasks
    assert (task, trigger_id, view["callback_id"], reply) == (
        Task.OPEN_VIEW, "trigger-1", ViewId.REQUEST_FORM, ReplyTo(REQUESTER, RESPONSE_URL))


@pytest.mark.parametrize("action_id, task", [
    (ActionId.APPROVE, Task.APPROVE),
    (ActionId.END_GRANT, Task.END_GRANT),
])
def test_a_click_hands_over_only_the_id_and_the_clicker(app, handoffs, action_id, task):
    assert dispatch(app, click(action_id, "17")).status == 200
    assert handoffs.tasks == [(task, "17", APPROVER, ReplyTo(APPROVER, RESPONSE_URL))]


@pytest.mark.parametrize("action_id, task", [
    (ActionId.DENY, Task.ASK_DENY_REASON),
    (ActionId.EXTEND_GRANT, Task.OPEN_EXTEND_FORM),
])
def test_a_click_that_opens_a_form_hands_over_its_trigger(app, handoffs, action_id, task):
    assert dispatch(app, click(action_id, "17")).status == 200
    assert handoffs.tasks == [(task, "17", APPROVER, "trigger-2",
                               ReplyTo(APPROVER, RESPONSE_URL))]


@pytest.mark.parametrize("action_id, task", [
    (ActionId.FINDING_DEACTIVATE, Task.DEACTIVATE_KEY),
    (ActionId.FINDING_FIX, Task.WILL_FIX),
    (ActionId.FINDING_SNOOZE, Task.SNOOZE),
])
def test_a_finding_click_hands_over_the_channel_it_came_from(app, handoffs, action_id, task):
    assert dispatch(app, click(action_id, "5")).status == 200
    assert handoffs.tasks == [(task, "5", APPROVER, "C0APPROVALS",
                               ReplyTo(APPROVER, RESPONSE_URL))]


def test_a_form_with_a_bad_duration_is_answered_in_the_form(app, handoffs):
    values = {BlockId.RESOURCE: {ActionId.RESOURCE_SELECT: {
                  "selected_option": {"value": RESOURCE}}},
              BlockId.DURATION: {ActionId.DURATION_INPUT: {"value": "soon"}},
              BlockId.REASON: {ActionId.REASON_INPUT: {"value": "why"}}}
    response = dispatch(app, submission(ViewId.REQUEST_FORM, values))
    body = json.loads(response.body)
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {BlockId.DURATION}
    assert handoffs.tasks == []


def test_a_deny_reason_is_handed_over_with_a_dm_for_the_answer(app, handoffs):
    values = {BlockId.DENY_REASON: {ActionId.DENY_REASON_INPUT: {"value": "not today"}}}
    response = dispatch(app, submission(ViewId.DENY_FORM, values, user=APPROVER,
                                        private_metadata="17"))
    assert response.status == 200
    assert handoffs.tasks == [(Task.DENY, "17", APPROVER, "not today", ReplyTo(APPROVER))]


def test_without_a_worker_slack_gets_no_acknowledgement(app, handoffs):
    """Slack then shows the user an error, instead of "Got it" for work nobody will do."""
    handoffs.gone = True
    response = dispatch(app, command(f"{RESOURCE} 1h deploy the hotfix"))
    assert response.status == 500
    assert "Got it" not in response.body


def test_a_task_the_database_cannot_record_is_never_acknowledged_as_got_it(app, handoffs):
    handoffs.no_database = True

    answer = json.loads(dispatch(app, command(f"{RESOURCE} 1h deploy the hotfix")).body)
    assert answer == {"response_type": "ephemeral", "text": NOT_RECORDED}

    values = {BlockId.DENY_REASON: {ActionId.DENY_REASON_INPUT: {"type": "plain_text_input",
                                                                 "value": "no"}}}
    response = dispatch(app, submission(ViewId.DENY_FORM, values, user=APPROVER,
                                        private_metadata="17"))
    assert json.loads(response.body) == {"response_action": "errors",
                                         "errors": {BlockId.DENY_REASON: NOT_RECORDED}}
    assert handoffs.tasks == []
