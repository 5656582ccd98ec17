"""`/request-access list`, App Home's event and its Request access button: signed requests
through app.dispatch hand over the right task; the worker's half owes the right rows."""

import json
import time

from slack_bolt import BoltRequest
from sqlalchemy import select

from accessbot.handlers.delivery import PUBLISH, Delivery
from accessbot.handlers.delivery import RESPONSE_URL as BY_URL
from accessbot.handlers.ids import ActionId, ViewId
from accessbot.handlers.tasks import ReplyTo, Task
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import OutboxMessage
from accessbot.services import outbox
from accessbot.services.outbox import Kind
from tests.factories import REQUESTER, active_grant
from tests.fakes.outbox import FakeWebClient
from tests.handlers.slack_requests import RESPONSE_URL, click, command, dispatch, sign


def event(tab: str = "home", user: str = REQUESTER) -> str:
    """An Events API request body, as Slack posts it (JSON)."""
    return json.dumps({
        "token": "unused", "team_id": "T0FAKE", "api_app_id": "A0BOT", "type": "event_callback",
        "event_id": "Ev0001", "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": "D0ALICE", "tab": tab,
                  "event_ts": f"{time.time():.6f}"}})


def dispatch_json(app, body: str):
    timestamp = str(int(time.time()))
    return app.dispatch(BoltRequest(body=body, headers={
        "content-type": ["application/json"],
        "x-slack-request-timestamp": [timestamp], "x-slack-signature": [sign(body, timestamp)]}))


def test_list_is_handed_over_with_its_response_url(app, handoffs):
    response = dispatch(app, command("list"))
    assert response.status == 200
    assert handoffs.tasks == [(Task.SHOW_LIST, REQUESTER, ReplyTo(REQUESTER, RESPONSE_URL))]


def test_help_mentions_list(app, handoffs):
    assert "/request-access list" in dispatch(app, command("help")).body


def test_opening_the_home_tab_hands_over_a_publish(app, handoffs):
    assert dispatch_json(app, event()).status == 200
    assert handoffs.tasks == [(Task.HOME_OPENED, REQUESTER)]


def test_opening_the_messages_tab_hands_over_nothing(app, handoffs):
    assert dispatch_json(app, event(tab="messages")).status == 200
    assert handoffs.tasks == []


def test_an_event_with_a_bad_user_is_refused(app, handoffs):
    assert dispatch_json(app, event(user="not a user")).status == 400
    assert handoffs.tasks == []


def test_request_access_on_home_opens_the_request_form(app, handoffs):
    assert dispatch(app, click(ActionId.OPEN_REQUEST_FORM, "0", user=REQUESTER)).status == 200
    [(task, trigger_id, view, reply)] = handoffs.tasks
    assert (task, trigger_id, view["callback_id"], reply) == (
        Task.OPEN_VIEW, "trigger-2", ViewId.REQUEST_FORM, ReplyTo(REQUESTER, RESPONSE_URL))


def owed(sessions) -> list[tuple[str, str, dict]]:
    with sessions() as session:
        return [(r.kind, r.queue, json.loads(r.args)) for r in session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id))]


def test_the_worker_owes_the_list_and_remembers_home(sessions, catalog, clock):
    work = Work(WorkDeps(sessions, catalog, None, None, None, clock, None, "worker-1"))
    work.show_list(REQUESTER, ReplyTo(REQUESTER, RESPONSE_URL))
    work.home_opened(REQUESTER)
    assert owed(sessions) == [
        (Kind.OVERVIEW, REQUESTER, {"user_id": REQUESTER, "response_url": RESPONSE_URL}),
        (Kind.HOME_REFRESH, f"home:{REQUESTER}", {"user_id": REQUESTER})]


def test_the_rows_render_as_an_ephemeral_answer_and_a_home_view(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    work = Work(WorkDeps(sessions, catalog, None, None, None, clock, None, "worker-1"))
    work.show_list(REQUESTER, ReplyTo(REQUESTER, RESPONSE_URL))
    work.home_opened(REQUESTER)
    delivery = Delivery(FakeWebClient(), catalog)
    with sessions() as session, session.begin():
        answer, home = outbox.claim(session, "sender", clock(), 10)
        answer_call = delivery.render(session, answer, clock())
        home_call = delivery.render(session, home, clock())
    assert (answer_call.method, answer_call.args["url"], answer_call.args["response_type"]) \
        == (BY_URL, RESPONSE_URL, "ephemeral")
    assert f'"value": "{grant_id}"' in json.dumps(answer_call.args["blocks"])
    assert (home_call.method, home_call.args["user_id"]) == (PUBLISH, REQUESTER)
    assert home_call.args["view"]["type"] == "home"
    assert "prod-admins" in json.dumps(home_call.args["view"])
