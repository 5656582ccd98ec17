"""Property-based tests of the Slack edge: signed requests with arbitrary command text,
durations, modal values, button values and raw bodies, through app.dispatch and through
the WSGI boundary. Never a 5xx, never an error in the log; bad input gets a 4xx or a
clear answer, and nothing is handed to the worker for it."""

import io
import json
import logging
from urllib.parse import quote, unquote_plus, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accessbot.handlers.boundary import SlackEndpoint, _unquote_plus
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.payloads import is_packed_break_glass
from accessbot.handlers.tasks import Task
from accessbot.services.commands import Draft, parse_command, parse_id
from accessbot.services.errors import InvalidInput
from tests.factories import RESOURCE
from tests.handlers.slack_requests import (
    SECRET,
    click_payload,
    command,
    dispatch,
    payload,
    sign,
    submission_payload,
)

NOW = 1_800_000_000
FORM = "application/x-www-form-urlencoded"
BOUNDED = settings(max_examples=200, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
# the keys Bolt and our listeners read, so that generated payloads reach them
KEYS = st.sampled_from([
    "type", "user", "id", "team", "enterprise", "channel", "container", "channel_id",
    "actions", "action_id", "value", "view", "callback_id", "state", "values",
    "private_metadata", "event", "message", "authorizations", "response_urls", "command",
    "text", "trigger_id", "user_id", "response_url", "is_ext_shared_channel",
    "is_enterprise_install", "app_installed_team_id", "selected_option", "ssl_check",
    "function_data", "function_execution_id", "previous_message", "item"])
SLACK_JSON = st.recursive(
    JSON | st.sampled_from(["block_actions", "view_submission", "/request-access",
                            "U0BOB", ActionId.APPROVE.value, ViewId.REQUEST_FORM.value, "17"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=20)


@pytest.fixture
def endpoint(app):
    return SlackEndpoint(app, SECRET, clock=lambda: NOW)


@pytest.fixture
def quiet(caplog):
    """Asserts, when called, that nothing was logged as an error or with a traceback."""
    caplog.set_level(logging.INFO)

    def check():
        bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not bad, [r.getMessage() for r in bad]

    return check


def post(endpoint: SlackEndpoint, body: bytes, content_type: str = FORM):
    """(status, body) of one signed POST through the WSGI boundary."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events",
               "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body),
               "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(NOW),
               "HTTP_X_SLACK_SIGNATURE": sign(body, str(NOW))}
    status = []
    answer = b"".join(endpoint(environ, lambda line, _headers: status.append(line)))
    return int(status[0].split()[0]), answer


def is_valid_command(catalog, text: str) -> bool:
    return parsed(catalog, text) is not None


def parsed(catalog, text: str):
    """What parse_command makes of the text, or None for text it refuses."""
    try:
        return parse_command(text, "U0ALICE", catalog)
    except InvalidInput:
        return None


# -- command text and durations ------------------------------------------------------------

@BOUNDED
@given(text=st.text(max_size=900))
def test_any_command_text_is_answered_over_http(endpoint, handoffs, catalog, quiet, text):
    handoffs.tasks.clear()
    status, body = post(endpoint, command(text).encode())
    assert status == 200
    quiet()
    if not is_valid_command(catalog, text):
        assert handoffs.tasks == []
        assert json.loads(body)["text"]  # a clear answer, at once


@BOUNDED
@given(text=st.text(max_size=300))
def test_any_command_text_through_dispatch_never_fails(app, handoffs, catalog, quiet, text):
    handoffs.tasks.clear()
    response = dispatch(app, command(text))
    assert response.status < 500
    quiet()
    if not is_valid_command(catalog, text):
        assert handoffs.tasks == []


DURATION = st.text(alphabet=st.sampled_from("0123456789smhdwSMHDW .-+x٣"), max_size=25)


@BOUNDED
@given(duration=DURATION)
def test_any_duration_is_answered_and_only_a_valid_one_handed_over(endpoint, handoffs,
                                                                   catalog, quiet, duration):
    handoffs.tasks.clear()
    text = f"{RESOURCE} {duration} the reason"
    status, body = post(endpoint, command(text).encode())
    assert status == 200
    quiet()
    assert bool(handoffs.tasks) == isinstance(parsed(catalog, text), Draft)
    assert json.loads(body).get("text")


# -- modal values and button values --------------------------------------------------------

FIELD = st.none() | st.text(max_size=40) | JSON | st.fixed_dictionaries({"value": JSON})


@BOUNDED
@given(resource=FIELD, duration=FIELD, reason=FIELD)
def test_any_form_values_get_a_form_answer_or_a_400(app, handoffs, quiet, resource,
                                                    duration, reason):
    handoffs.tasks.clear()
    values = {BlockId.RESOURCE: {ActionId.RESOURCE_SELECT: {"selected_option": resource}},
              BlockId.DURATION: {ActionId.DURATION_INPUT: {"value": duration}},
              BlockId.REASON: {ActionId.REASON_INPUT: {"value": reason}}}
    response = dispatch(app, payload(submission_payload(ViewId.REQUEST_FORM, values)))
    assert response.status in (200, 400)
    quiet()
    if response.status == 400:
        assert handoffs.tasks == []
    elif handoffs.tasks:
        [(task, _user, draft, _reply)] = handoffs.tasks
        assert task is Task.SUBMIT_REQUEST and isinstance(draft.reason, str)
    else:
        assert json.loads(response.body)["response_action"] == "errors"


@BOUNDED
@given(values=SLACK_JSON)
def test_any_state_values_never_fail(app, handoffs, quiet, values):
    handoffs.tasks.clear()
    for view in (ViewId.REQUEST_FORM, ViewId.DENY_FORM, ViewId.EXTEND_FORM):
        response = dispatch(app, payload(submission_payload(view, values,
                                                            private_metadata="17")))
        assert response.status in (200, 400)
    quiet()


def is_id(value) -> bool:
    try:
        return isinstance(value, str) and parse_id(value) >= 0
    except InvalidInput:
        return False


@BOUNDED
@given(value=JSON | st.text(alphabet="0123456789 x-", max_size=14),
       action=st.sampled_from(list(ActionId)))
def test_only_a_button_value_that_is_an_id_is_handed_over(app, handoffs, quiet, value,
                                                          action):
    handoffs.tasks.clear()
    response = dispatch(app, payload(click_payload(action, value)))
    assert response.status in (200, 400, 404)  # 404: an id no listener is for
    quiet()
    if action is ActionId.BREAK_GLASS_NOW:  # the one button that carries what was typed
        if not (isinstance(value, str) and is_packed_break_glass(value)):
            assert handoffs.tasks == []
    elif not is_id(value):
        assert handoffs.tasks == []
    elif response.status == 200 and action not in (ActionId.RESOURCE_SELECT,
                                                    ActionId.DURATION_INPUT,
                                                    ActionId.REASON_INPUT,
                                                    ActionId.DENY_REASON_INPUT,
                                                    # opens the form: its value is unused
                                                    ActionId.OPEN_REQUEST_FORM):
        assert handoffs.tasks[0][1] == value


# -- raw bodies through the boundary -------------------------------------------------------

@BOUNDED
@given(body=st.binary(max_size=300))
def test_any_signed_bytes_get_a_4xx_or_an_answer(endpoint, handoffs, quiet, body):
    handoffs.tasks.clear()
    for content_type in (FORM, "application/json"):
        status, _answer = post(endpoint, body, content_type)
        assert status < 500
    quiet()


@BOUNDED
@given(data=SLACK_JSON)
def test_any_signed_json_payload_gets_a_4xx_or_an_answer(endpoint, handoffs, quiet, data):
    handoffs.tasks.clear()
    text = json.dumps(data)
    status, _ = post(endpoint, urlencode({"payload": text}).encode())
    assert status < 500
    status, _ = post(endpoint, text.encode(), "application/json")
    assert status < 500
    quiet()


@BOUNDED
@given(fields=st.dictionaries(KEYS, st.text(max_size=30), max_size=8))
def test_any_signed_form_gets_a_4xx_or_an_answer(endpoint, handoffs, quiet, fields):
    handoffs.tasks.clear()
    status, _ = post(endpoint, urlencode(fields).encode())
    assert status < 500
    quiet()


# the form decoder's fast path (binascii) against urllib's, which it stands in for: the
# characters that matter to either (escapes, "=", "+", line breaks, non-ASCII) come often
ESCAPED = st.text(alphabet=st.sampled_from("%+=\n\r\t _aF09gz\u00e9\u20ac") | st.characters(),
                  max_size=40)


def _urllib(value: str) -> str | type[UnicodeDecodeError]:
    try:
        return unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        return UnicodeDecodeError


@BOUNDED
@given(value=ESCAPED)
def test_the_fast_form_decoder_agrees_with_urllib_on_any_text(value):
    try:
        ours = _unquote_plus(value)
    except UnicodeDecodeError:
        ours = UnicodeDecodeError
    assert ours == _urllib(value)


@BOUNDED
@given(text=st.text(max_size=200), safe=st.sampled_from(["", "/", "/:,{}\"", "*~'()!"]))
def test_the_fast_form_decoder_reads_any_encoded_text_back(text, safe):
    # Slack's encoder is not ours: whichever characters it leaves unescaped, and "+" or
    # "%20" for a space
    for encoded in (quote(text, safe=safe), quote(text, safe=safe).replace("%20", "+")):
        assert _unquote_plus(encoded) == text
