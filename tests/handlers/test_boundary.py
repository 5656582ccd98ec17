"""The HTTP boundary over WSGI: size, signature, one parse, then Bolt. Every malformed
request gets its 4xx with at most a warning in the log, never a 500 or a traceback."""

import io
import json
import logging
from urllib.parse import urlencode

import pytest

from accessbot.handlers.boundary import MAX_BODY, MAX_DEPTH, MAX_SKEW, SlackEndpoint, _too_deep
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.tasks import ReplyTo, Task
from tests.factories import APPROVER, REQUESTER, RESOURCE
from tests.handlers.slack_requests import (
    RESPONSE_URL,
    Handoffs,
    click_payload,
    command,
    make_app,
    sign,
    submission_payload,
)

NOW = 1_800_000_000
TIMESTAMP = str(NOW)
FORM = "application/x-www-form-urlencoded"


class Unreadable(io.BytesIO):
    """A request body that must not be read."""

    def read(self, *_):
        raise AssertionError("the body was read")


def environ(body: bytes | str, *, timestamp: str | None = TIMESTAMP,
            signature: str | None = None, content_type: str = FORM,
            length: str | None = None, stream=None) -> dict:
    data = body.encode() if isinstance(body, str) else body
    headers = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events",
               "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(data)) if length is None else length,
               "wsgi.input": stream or io.BytesIO(data)}
    if timestamp is not None:
        headers["HTTP_X_SLACK_REQUEST_TIMESTAMP"] = timestamp
        headers["HTTP_X_SLACK_SIGNATURE"] = signature or sign(data, timestamp)
    elif signature is not None:
        headers["HTTP_X_SLACK_SIGNATURE"] = signature
    return headers


class Answer:
    def __init__(self, endpoint: SlackEndpoint, env: dict):
        self.status_line, self.headers = "", []
        self.body = b"".join(endpoint(env, self.start_response))

    def start_response(self, status: str, headers: list) -> None:
        self.status_line, self.headers = status, headers

    @property
    def status(self) -> int:
        return int(self.status_line.split()[0])


@pytest.fixture
def handoffs():
    return Handoffs()


@pytest.fixture
def endpoint(catalog, handoffs):
    return SlackEndpoint(make_app(catalog, handoffs), "listener-test-secret",
                         clock=lambda: NOW)


@pytest.fixture
def send(endpoint, caplog):
    """Send one request; assert that the log has no error and no traceback for it."""
    caplog.set_level(logging.INFO)

    def send(env: dict) -> Answer:
        answer = Answer(endpoint, env)
        assert answer.status < 500, answer.body
        bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not bad, [r.getMessage() for r in bad]
        return answer

    return send


def form_payload(value: str) -> str:
    return urlencode({"payload": value})


# -- what works ------------------------------------------------------------------------

def test_a_signed_command_is_handed_over_and_acknowledged(send, handoffs):
    answer = send(environ(command(f"{RESOURCE} 1h deploy the hotfix")))
    assert answer.status == 200
    assert "Got it" in json.loads(answer.body)["text"]
    [(task, user, draft, reply)] = handoffs.tasks
    assert (task, user, draft.reason, reply) == (
        Task.SUBMIT_REQUEST, REQUESTER, "deploy the hotfix", ReplyTo(REQUESTER, RESPONSE_URL))


def test_a_command_that_mentions_payload_is_still_a_command(send, handoffs):
    """Bolt's own parser reads any form body containing "payload" as interactivity."""
    answer = send(environ(command(f"{RESOURCE} 1h fix the payload parser")))
    assert answer.status == 200
    [(_task, _user, draft, _reply)] = handoffs.tasks
    assert draft.reason == "fix the payload parser"


def test_a_signed_click_is_handed_over(send, handoffs):
    answer = send(environ(form_payload(json.dumps(click_payload(ActionId.APPROVE, "17")))))
    assert answer.status == 200
    assert handoffs.tasks == [(Task.APPROVE, "17", APPROVER, ReplyTo(APPROVER, RESPONSE_URL))]


def test_a_submission_with_several_response_urls_is_handed_over(send, handoffs):
    """A modal with several conversation pickers brings one response_url for each."""
    values = {BlockId.DENY_REASON: {ActionId.DENY_REASON_INPUT: {"value": "not today"}}}
    urls = [{"block_id": f"b{n}", "action_id": "a", "channel_id": f"C{n}",
             "response_url": f"https://hooks.slack.com/app/T0/{n}/x"} for n in (1, 2)]
    body = {**submission_payload(ViewId.DENY_FORM, values, user=APPROVER,
                                 private_metadata="17"), "response_urls": urls}
    assert send(environ(form_payload(json.dumps(body)))).status == 200
    [(task, *_)] = handoffs.tasks
    assert task == Task.DENY


def test_url_verification_gets_its_challenge_back(send):
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c-123"})
    answer = send(environ(body, content_type="application/json"))
    assert (answer.status, json.loads(answer.body)) == (200, {"challenge": "c-123"})


def test_a_content_type_with_a_charset_is_accepted(send, handoffs):
    send(environ(command(f"{RESOURCE} 1h why"), content_type=f"{FORM}; charset=utf-8"))
    assert len(handoffs.tasks) == 1


def test_a_body_of_the_largest_size_is_read(send, handoffs):
    """Clicks and submissions carry the whole message or view: tens of KiB."""
    def body(padding: int) -> str:
        message = {"type": "message", "text": "x" * padding}
        return form_payload(json.dumps({**click_payload(ActionId.APPROVE, "17"),
                                        "message": message}))

    padded = body(MAX_BODY - len(body(0)))
    assert len(padded.encode()) == MAX_BODY
    assert send(environ(padded)).status == 200
    assert len(handoffs.tasks) == 1


def test_a_long_command_is_answered_not_refused(send, handoffs):
    answer = send(environ(command("x" * 5000)))
    assert "too long" in json.loads(answer.body)["text"]
    assert handoffs.tasks == []


# -- refused before the signature: the length ---------------------------------------------

@pytest.mark.parametrize("length, status", [
    ("", 411), ("abc", 400), ("-1", 400), ("1e3", 400), (" 12", 400), ("١٢", 400),
    (str(MAX_BODY + 1), 413), ("99999999999999999999", 413),
])
def test_a_missing_or_bad_content_length_is_refused_unread(send, handoffs, length, status):
    answer = send(environ(command("help"), length=length, stream=Unreadable()))
    assert answer.status == status
    assert handoffs.tasks == []


def test_a_body_shorter_than_its_length_is_refused(send):
    env = environ(command("help"), length="5000")
    assert send(env).status == 400


# -- the signature: 401 ------------------------------------------------------------------

@pytest.mark.parametrize("timestamp", [
    None, "", "abc", "1e9", "1.5", " 1800000000", "-1800000000", "١٨٠٠٠٠٠٠٠٠",
    str(NOW - MAX_SKEW - 1), str(NOW + MAX_SKEW + 1), "9" * 40,
])
def test_a_missing_non_numeric_or_stale_timestamp_is_401(send, handoffs, timestamp):
    body = command(f"{RESOURCE} 1h why")
    signature = sign(body, timestamp) if timestamp else None
    answer = send(environ(body, timestamp=timestamp, signature=signature))
    assert answer.status == 401
    assert handoffs.tasks == []


def test_a_timestamp_within_the_allowed_skew_is_accepted(send):
    assert send(environ(command("help"), timestamp=str(NOW - MAX_SKEW))).status == 200


@pytest.mark.parametrize("signature", [
    "v0=" + "0" * 64, "v1=abc", "nonsense", "v0=é", "\u20ac",
])
def test_a_bad_signature_is_401(send, handoffs, signature):
    env = environ(command(f"{RESOURCE} 1h why"), signature=signature)
    assert send(env).status == 401
    assert handoffs.tasks == []


def test_a_missing_signature_is_401(send):
    env = environ(command("help"))
    del env["HTTP_X_SLACK_SIGNATURE"]
    assert send(env).status == 401


def test_a_signature_of_another_body_is_401(send):
    env = environ(command("help"), signature=sign(command("other"), TIMESTAMP))
    assert send(env).status == 401


@pytest.mark.parametrize("body", [b"\xff\xfe", b"payload=[1,2]", b"payload=" + b"[" * 5000])
def test_garbage_without_a_valid_signature_is_401_not_400(send, body):
    assert send(environ(body, signature="v0=" + "1" * 64)).status == 401


# -- signed, but not what Slack sends: 400 (415 for another content type) ------------------

DEEP = "[" * 50_000 + "]" * 50_000
NESTED = "{}"
for _ in range(MAX_DEPTH + 1):
    NESTED = '{"a": ' + NESTED + "}"


@pytest.mark.parametrize("body", [
    b"\xff\xfe\xfd",  # not UTF-8
    b"payload=%FF%FE",  # %-escapes that are not UTF-8
    form_payload("not json").encode(),
    form_payload("[1, 2, 3]").encode(),  # JSON, but a list
    form_payload("null").encode(),
    form_payload('"a string"').encode(),
    b"payload=" + DEEP.encode(),  # RecursionError inside json
    form_payload(NESTED).encode(),  # nested deeper than MAX_DEPTH
    form_payload("1" * 5000).encode(),  # an int too long for int()
    b"",  # nothing at all
    b"payload=%7B%7D&payload=%7B%7D",  # a field twice
    b"payload=%7B%7D&command=%2Frequest-access",
    b"&".join(b"f%d=1" % i for i in range(200)),  # more fields than any Slack form
], ids=lambda body: repr(body[:40]))
def test_a_signed_body_that_is_not_slacks_is_400(send, handoffs, body):
    assert send(environ(body)).status == 400
    assert handoffs.tasks == []


def nested(depth: int) -> str:
    text = "1"
    for level in range(depth):
        text = f'{{"a": {text}}}' if level % 2 else f"[{text}]"
    return text


def too_deep(text: str) -> bool:
    return _too_deep(json.loads(text), text)


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 9])
def test_nesting_is_refused_only_beyond_max_depth(depth):
    assert too_deep(nested(depth)) == (depth > MAX_DEPTH)


def test_brackets_inside_strings_are_text_not_nesting():
    text = json.dumps({"reason": "[{" * 200 + '"\\' + "}]" * 3, "blocks": [[["]}"]]]})
    assert not too_deep(text)
    assert too_deep(json.dumps({"reason": "[{" * 200, "deep": json.loads(nested(MAX_DEPTH))}))


@pytest.mark.parametrize("body", ["[1]", "not json", "", DEEP, "3"])
def test_a_signed_json_body_that_is_not_an_object_is_400(send, body):
    assert send(environ(body, content_type="application/json")).status == 400


@pytest.mark.parametrize("content_type", ["text/plain", "", "multipart/form-data"])
def test_another_content_type_is_415(send, content_type):
    assert send(environ(command("help"), content_type=content_type)).status == 415


def _click(**changes) -> str:
    return form_payload(json.dumps({**click_payload(ActionId.APPROVE, "17"), **changes}))


@pytest.mark.parametrize("body", [
    _click(user=42), _click(user=["U0BOB"]), _click(team=[1]), _click(team=7),
    _click(enterprise=3), _click(channel=5), _click(actions=[]), _click(actions="approve"),
    _click(actions=[1]), _click(authorizations=[3]), _click(authorizations={}),
    _click(response_urls=["x"]), _click(type=["block_actions"]), _click(container="c"),
    _click(view=[]), _click(event={"user": 3}), _click(message={"user": {"id": 4}}),
    _click(is_ext_shared_channel=True, event=[]),
    form_payload(json.dumps({"type": "view_submission", "user": {"id": "U0BOB"}})),
    form_payload(json.dumps({"type": "view_submission", "view": {"callback_id": 3}})),
    form_payload(json.dumps({"type": "view_submission", "view": {"app_installed_team_id": 1,
                                                                 "callback_id": "x"}})),
    urlencode({"command": "/request-access", "text": "help", "user_id": "U0ALICE"}),
], ids=lambda body: body[:60])
def test_a_payload_bolt_cannot_read_is_400(send, handoffs, body):
    assert send(environ(body)).status == 400
    assert handoffs.tasks == []


def test_a_refusal_is_one_warning_line(endpoint, caplog):
    caplog.set_level(logging.INFO)
    Answer(endpoint, environ(form_payload("[1]")))
    [record] = [r for r in caplog.records if r.name == "accessbot.handlers.boundary"]
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert "\n" not in record.getMessage()
