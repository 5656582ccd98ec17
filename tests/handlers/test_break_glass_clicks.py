"""Break-glass at the Slack edge: the command's confirmation, the form's second step, the
Reviewed button and its note form (signed requests through app.dispatch), then the
tasks they hand over, run by Work on a real database."""

import json

import pytest
from sqlalchemy import select

from accessbot.handlers import blocks, break_glass_blocks
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.tasks import ReplyTo, Task, encode_args
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import BreakGlassReview, RequestStatus, transaction
from accessbot.services import break_glass, inbox
from accessbot.services.commands import make_break_glass, parse_command
from accessbot.services.outbox import Kind
from accessbot.services.runner import AccessRunner
from tests.factories import APPROVER, IAM_USER, REQUESTER, load_request, make_catalog
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider
from tests.handlers.slack_requests import (
    RESPONSE_URL,
    click,
    command,
    dispatch,
    submission,
)

GLASS = {"prod-admins": {"break_glass": True, "break_glass_max_duration": "1h"}}


@pytest.fixture
def catalog():
    return make_catalog(GLASS)


def packed(duration="3h", reason="prod is down <!channel>"):
    return break_glass.pack("prod-admins", duration, reason)


# -- parsing ---------------------------------------------------------------------------------

def test_the_flag_makes_a_break_glass_anywhere_in_the_command(catalog):
    for text in ("prod-admins 3h prod is down --break-glass",
                 "--break-glass prod-admins 3h prod is down",
                 "prod-admins 3h prod --BREAK-GLASS is down"):
        glass = parse_command(text, REQUESTER, catalog)
        assert glass.draft.resource.name == "prod-admins"
        assert glass.draft.duration.total_seconds() == 3600 and glass.cut
        assert glass.draft.reason == "prod is down"
    assert not hasattr(parse_command("prod-admins 3h prod is down", REQUESTER, catalog), "cut")


def test_the_flag_needs_a_resource_duration_and_reason(catalog):
    with pytest.raises(Exception, match="Say what you need"):
        parse_command("--break-glass", REQUESTER, catalog)
    with pytest.raises(Exception, match="reason"):
        parse_command("prod-admins 30m --break-glass", REQUESTER, catalog)
    with pytest.raises(Exception, match="does not allow break-glass"):
        parse_command("prod-readonly 30m broken --break-glass", REQUESTER, catalog)


# -- the listeners -----------------------------------------------------------------------------

def test_the_command_asks_to_confirm_with_a_button_behind_a_confirm_dialog(app, handoffs):
    response = dispatch(app, command("prod-admins 3h prod is down <!channel> --break-glass"))

    answer = json.loads(response.body)
    assert answer["response_type"] == "ephemeral"
    [button] = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == ActionId.BREAK_GLASS_NOW
    assert "alerts security" in button["confirm"]["text"]["text"]
    assert "cut" not in answer["text"] and "at most 1h" in answer["text"]
    shown = json.dumps([b for b in answer["blocks"] if b["type"] == "section"])
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown  # escaped
    assert handoffs.tasks == []  # nothing until it is confirmed


def test_the_confirm_click_hands_over_what_was_typed(app, handoffs):
    response = dispatch(app, click(ActionId.BREAK_GLASS_NOW, packed(), user=REQUESTER))

    assert response.status == 200
    assert handoffs.tasks == [(Task.SUBMIT_BREAK_GLASS, REQUESTER, packed(),
                               ReplyTo(REQUESTER, RESPONSE_URL))]


def form_values(resource="prod-admins", duration="3h", reason="prod is down", checked=True):
    return {
        BlockId.RESOURCE: {ActionId.RESOURCE_SELECT: {"type": "static_select",
                                                      "selected_option": {"value": resource}}},
        BlockId.DURATION: {ActionId.DURATION_INPUT: {"type": "plain_text_input",
                                                     "value": duration}},
        BlockId.REASON: {ActionId.REASON_INPUT: {"type": "plain_text_input", "value": reason}},
        BlockId.BREAK_GLASS: {ActionId.BREAK_GLASS_CHECK: {
            "type": "checkboxes",
            "selected_options": [{"value": blocks.BREAK_GLASS_CHECKED}] if checked else []}},
    }


def test_the_form_offers_the_checkbox_only_with_a_break_glass_resource(catalog):
    form = blocks.request_form(catalog, REQUESTER)
    assert BlockId.BREAK_GLASS in [b.get("block_id") for b in form["blocks"]]
    plain = blocks.request_form(make_catalog(), REQUESTER)
    assert BlockId.BREAK_GLASS not in [b.get("block_id") for b in plain["blocks"]]


def test_the_checked_form_becomes_a_confirmation_step(app, handoffs):
    response = dispatch(app, submission(ViewId.REQUEST_FORM, form_values()))

    answer = json.loads(response.body)
    assert answer["response_action"] == "update"
    assert answer["view"]["callback_id"] == ViewId.BREAK_GLASS_FORM
    assert answer["view"]["submit"]["text"] == "Break glass now"
    assert "alerts security" in json.dumps(answer["view"])
    assert json.loads(answer["view"]["private_metadata"]) == ["prod-admins", "3h",
                                                              "prod is down"]
    assert handoffs.tasks == []


def test_an_unchecked_form_is_an_ordinary_request(app, handoffs):
    dispatch(app, submission(ViewId.REQUEST_FORM, form_values(checked=False)))
    [(task, *_)] = handoffs.tasks
    assert task is Task.SUBMIT_REQUEST


def test_a_checked_form_for_a_resource_without_break_glass_is_refused_on_the_field(app,
                                                                                    handoffs):
    response = dispatch(app, submission(ViewId.REQUEST_FORM,
                                        form_values(resource="prod-readonly")))
    answer = json.loads(response.body)
    assert answer["response_action"] == "errors"
    assert "does not allow break-glass" in answer["errors"][BlockId.RESOURCE]


def test_the_confirmation_step_hands_over(app, handoffs):
    dispatch(app, submission(ViewId.BREAK_GLASS_FORM, {}, private_metadata=packed()))
    assert handoffs.tasks == [(Task.SUBMIT_BREAK_GLASS, REQUESTER, packed(),
                               ReplyTo(REQUESTER))]


def test_reviewed_opens_the_note_form_and_the_note_is_handed_over(app, handoffs):
    dispatch(app, click(ActionId.BREAK_GLASS_REVIEWED, "7"))
    note = {BlockId.BREAK_GLASS_NOTE: {ActionId.BREAK_GLASS_NOTE_INPUT: {
        "type": "plain_text_input", "value": "checked: INC-42"}}}
    dispatch(app, submission(ViewId.BREAK_GLASS_REVIEW_FORM, note, user=APPROVER,
                             private_metadata="7"))
    empty = {BlockId.BREAK_GLASS_NOTE: {ActionId.BREAK_GLASS_NOTE_INPUT: {
        "type": "plain_text_input", "value": " "}}}
    refused = dispatch(app, submission(ViewId.BREAK_GLASS_REVIEW_FORM, empty, user=APPROVER,
                                       private_metadata="7"))

    assert handoffs.tasks == [
        (Task.OPEN_BREAK_GLASS_REVIEW, "7", APPROVER, "trigger-2",
         ReplyTo(APPROVER, RESPONSE_URL)),
        (Task.BREAK_GLASS_REVIEWED, "7", APPROVER, "checked: INC-42", ReplyTo(APPROVER))]
    assert json.loads(refused.body)["response_action"] == "errors"


def test_a_reviewed_click_whose_value_is_not_an_id_is_refused(app, handoffs):
    assert dispatch(app, click(ActionId.BREAK_GLASS_REVIEWED, "7; drop")).status == 400
    assert handoffs.tasks == []


# -- Block Kit ---------------------------------------------------------------------------------

def test_the_confirm_form_escapes_the_reason(catalog):
    glass = make_break_glass(catalog, REQUESTER, "prod-admins", "30m",
                             "<https://evil|click> & <!here>")
    view = json.dumps(break_glass_blocks.confirm_form(glass, "{}"))
    assert "<!here>" not in view and "&lt;!here&gt;" in view and "&amp;" in view


# -- the tasks, on a real database ---------------------------------------------------------------

@pytest.fixture
def aws_calls():
    return []


@pytest.fixture
def runner(sessions, catalog, clock):
    return AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory({REQUESTER: IAM_USER}),
                        FakeProfiles(), clock=clock, owner="w")


@pytest.fixture
def work(sessions, catalog, clock, aws_calls, runner):
    views = []
    client = type("Client", (), {"views_open": lambda self, **kw: views.append(kw)})()
    work = Work(WorkDeps(sessions, catalog, runner, None, client, clock,
                         lambda fn, *args: aws_calls.append((fn.__name__, args)), "worker-1"))
    work.views = views
    return work


def run(sessions, clock, work, task: Task, *args) -> None:
    with transaction(sessions) as session:
        inbox.add(session, task.value, encode_args(args), clock())
    with transaction(sessions) as session:
        [claimed] = inbox.claim(session, "worker-1", clock(), 10)
    work.run(claimed)


def replies(sessions, catalog, clock):
    return [r["text"] for r in Mailroom(sessions, catalog, clock).owed(Kind.REPLY)]


def test_confirmed_break_glass_is_recorded_then_announced_which_grants_it(
        work, sessions, catalog, clock, aws_calls, runner):
    run(sessions, clock, work, Task.SUBMIT_BREAK_GLASS, REQUESTER, packed(),
        ReplyTo(REQUESTER, RESPONSE_URL))

    [(called, (request_id,))] = aws_calls
    assert called == "announce"
    request = load_request(sessions, request_id)
    assert request.break_glass and request.duration.total_seconds() == 3600
    [said] = replies(sessions, catalog, clock)
    assert "You asked for 3h; break-glass lasts at most 1h" in said

    runner.announce(request_id)
    assert load_request(sessions, request_id).status is RequestStatus.APPROVED


def test_a_stale_confirmation_is_answered_not_recorded(work, sessions, catalog, clock,
                                                       aws_calls):
    run(sessions, clock, work, Task.SUBMIT_BREAK_GLASS, REQUESTER, "not json",
        ReplyTo(REQUESTER))
    assert aws_calls == []
    assert replies(sessions, catalog, clock) == [
        ":warning: That break-glass confirmation is not valid any more."]


def test_an_approver_opens_the_note_form_and_marks_it_reviewed(work, sessions, catalog,
                                                               clock, runner, aws_calls):
    run(sessions, clock, work, Task.SUBMIT_BREAK_GLASS, REQUESTER, packed(),
        ReplyTo(REQUESTER))
    [(_, (request_id,))] = aws_calls
    runner.announce(request_id)
    with sessions() as session:
        review_id = session.scalar(select(BreakGlassReview.id))

    run(sessions, clock, work, Task.OPEN_BREAK_GLASS_REVIEW, str(review_id), REQUESTER,
        "trigger-3", ReplyTo(REQUESTER))  # never the requester
    assert work.views == []
    run(sessions, clock, work, Task.OPEN_BREAK_GLASS_REVIEW, str(review_id), APPROVER,
        "trigger-4", ReplyTo(APPROVER))
    [opened] = work.views
    assert opened["view"]["callback_id"] == ViewId.BREAK_GLASS_REVIEW_FORM
    assert opened["view"]["private_metadata"] == str(review_id)

    run(sessions, clock, work, Task.BREAK_GLASS_REVIEWED, str(review_id), APPROVER,
        "justified", ReplyTo(APPROVER))
    with sessions() as session:
        review = session.get(BreakGlassReview, review_id)
        assert (review.reviewed_by, review.note) == (APPROVER, "justified")
    said = replies(sessions, catalog, clock)
    assert "cannot review your own" in said[-2] and "marked reviewed" in said[-1]


def test_a_break_glass_click_without_a_packed_request_is_refused(app, handoffs):
    for value in ("7", '["prod-admins", 3, "x"]', "[]", "not json"):
        assert dispatch(app, click(ActionId.BREAK_GLASS_NOW, value, user=REQUESTER)).status == 400
    assert handoffs.tasks == []
