"""The web process's listeners through Bolt's app.dispatch with signed requests: what each
one acknowledges, and what it hands to the worker (handlers/work.py runs it there)."""

import json
import logging
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from accessbot.handlers.handoff import NOT_RECORDED
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.tasks import ReplyTo, Task
from accessbot.services.commands import Draft
from tests.factories import APPROVER, REQUESTER, RESOURCE
from tests.handlers.slack_requests import (
    RESPONSE_URL,
    click,
    click_payload,
    command,
    command_fields,
    dispatch,
    payload,
    submission,
    submission_payload,
)


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
    (ActionId.FINDING_CAP_SESSION, Task.CAP_SESSION),
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


# -- payloads without the fields a listener reads: 400, and nothing handed over ----------

APPROVE_CLICK = click_payload(ActionId.APPROVE, "17")
DENY_FORM = submission_payload(ViewId.DENY_FORM, {}, user=APPROVER, private_metadata="17")


def without(body: dict, *path: str) -> dict:
    """A deep copy of body without the field at path."""
    copy = json.loads(json.dumps(body))
    *parents, last = path
    target = copy
    for key in parents:
        target = target[key]
    del target[last]
    return copy


def replaced(body: dict, value, *path) -> dict:
    copy = json.loads(json.dumps(body))
    *parents, last = path
    target = copy
    for key in parents:
        target = target[key]
    target[last] = value
    return copy


@pytest.mark.parametrize("body", [
    without(APPROVE_CLICK, "user"),
    without(APPROVE_CLICK, "user", "id"),
    replaced(APPROVE_CLICK, 42, "user", "id"),
    replaced(APPROVE_CLICK, "U0BOB> <!channel", "user", "id"),
    without(APPROVE_CLICK, "trigger_id"),
    replaced(APPROVE_CLICK, ["t"], "trigger_id"),
    without(APPROVE_CLICK, "actions", 0, "action_id"),
    replaced(APPROVE_CLICK, ["accessbot.approve"], "actions"),
    replaced(APPROVE_CLICK, 17, "actions", 0, "value"),
    replaced(APPROVE_CLICK, "17; drop", "actions", 0, "value"),
    without(APPROVE_CLICK, "actions", 0, "value"),
    replaced(APPROVE_CLICK, {"id": 5}, "channel"),
    without(DENY_FORM, "user"),
    without(DENY_FORM, "view", "state"),
    replaced(DENY_FORM, [], "view", "state", "values"),
    replaced(DENY_FORM, {"deny_reason": []}, "view", "state", "values"),
    replaced(DENY_FORM, {"deny_reason": {"accessbot.deny_reason_input": {"value": 3}}},
             "view", "state", "values"),
    replaced(DENY_FORM, {"resource": {"accessbot.resource_select": {"selected_option": "x"}}},
             "view", "state", "values"),
    replaced(DENY_FORM, 17, "view", "private_metadata"),
], ids=lambda body: json.dumps(body)[:60])
def test_a_payload_missing_what_a_listener_reads_gets_400(app, handoffs, caplog, body):
    response = dispatch(app, payload(body))
    assert response.status == 400
    assert handoffs.tasks == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("fields", [
    {"trigger_id": None}, {"user_id": "alice"}, {"user_id": None}, {"text": None},
])
def test_a_command_missing_what_the_listener_reads_gets_400(app, handoffs, caplog, fields):
    body = {k: v for k, v in {**command_fields("help"), **fields}.items() if v is not None}
    response = dispatch(app, urlencode(body))
    assert response.status == 400
    assert handoffs.tasks == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_deny_form_for_no_request_is_answered_in_the_form(app, handoffs):
    response = dispatch(app, payload(replaced(DENY_FORM, "not-an-id", "view",
                                              "private_metadata")))
    assert json.loads(response.body)["response_action"] == "errors"
    assert handoffs.tasks == []
