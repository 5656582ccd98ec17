"""Slack's request bodies, a Bolt app with our listeners, and a recorder of handoffs: for
tests of the listeners (through app.dispatch) and of the HTTP boundary (over WSGI); and
an ASGI GET, for the web process's routes."""

import asyncio
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult

from accessbot.handlers.handoff import HandoffFailed
from accessbot.handlers.ids import BlockId
from accessbot.handlers.listeners import register
from accessbot.jobs.worker import WorkerFailed
from accessbot.services.catalog import Catalog
from tests.factories import APPROVER, REQUESTER

SECRET = "listener-test-secret"
RESPONSE_URL = "https://hooks.slack.com/actions/T0FAKE/1/response"  # as Slack makes them
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


def make_app(catalog: Catalog, handoffs: Handoffs) -> App:
    app = App(signing_secret=SECRET, authorize=lambda **_: AUTHORIZED,
              process_before_response=True)
    register(app, catalog, handoffs)
    return app


def sign(body: str | bytes, timestamp: str) -> str:
    """Slack's v0 signature of the raw bytes (SignatureVerifier wants text)."""
    data = body.encode() if isinstance(body, str) else body
    signed = b"v0:" + timestamp.encode() + b":" + data
    return "v0=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()


def dispatch(app: App, body: str) -> BoltResponse:
    timestamp = str(int(time.time()))
    return app.dispatch(BoltRequest(body=body, headers={
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [timestamp], "x-slack-signature": [sign(body, timestamp)]}))


def command_fields(text: str, user: str = REQUESTER) -> dict:
    return {"command": "/request-access", "text": text, "user_id": user, "team_id": "T0FAKE",
            "channel_id": "C0GENERAL", "response_url": RESPONSE_URL, "trigger_id": "trigger-1"}


def command(text: str, user: str = REQUESTER) -> str:
    return urlencode(command_fields(text, user))


def payload(body: dict) -> str:
    return urlencode({"payload": json.dumps({"team": {"id": "T0FAKE"}, **body})})


def click_payload(action_id: str, value, user=APPROVER) -> dict:
    return {"type": "block_actions", "user": {"id": user}, "trigger_id": "trigger-2",
            "response_url": RESPONSE_URL, "channel": {"id": "C0APPROVALS"},
            "container": {"type": "message", "channel_id": "C0APPROVALS"},
            "actions": [{"action_id": action_id, "block_id": BlockId.DECISION,
                         "type": "button", "value": value}]}


def click(action_id: str, value, user=APPROVER) -> str:
    return payload(click_payload(action_id, value, user))


def submission_payload(callback_id: str, values, user=REQUESTER,
                       private_metadata="") -> dict:
    return {"type": "view_submission", "user": {"id": user},
            "view": {"type": "modal", "callback_id": callback_id,
                     "private_metadata": private_metadata, "state": {"values": values}}}


def submission(callback_id: str, values, user=REQUESTER, private_metadata="") -> str:
    return payload(submission_payload(callback_id, values, user, private_metadata))


def asgi_get(app, path: str) -> tuple[int, str]:
    """(status, body) of GET `path` from an ASGI app, called as the server calls it."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "GET", "path": path, "query_string": b"",
                     "headers": []}, receive, send))
    start, *bodies = sent
    return start["status"], b"".join(m.get("body", b"") for m in bodies).decode()
