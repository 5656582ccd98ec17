"""Socket Mode end to end: `python bot.py` with SLACK_APP_TOKEN, envelopes over a WebSocket."""

import json
from urllib.parse import parse_qs, parse_qsl

import pytest

from accessbot.handlers.ids import ActionId
from tests.e2e.test_loop import dm_containing, members, read
from tests.fakes.harness import SlackSender
from tests.fakes.socket_mode import FakeSocketMode

pytestmark = pytest.mark.e2e

APP_TOKEN = "xapp-1-A0ACCESSBOT-1-test"


@pytest.fixture
def socket_mode(slack):
    """Slack's WebSocket end; apps.connections.open on the fake Web API points to it."""
    with FakeSocketMode() as fake:
        slack.socket_mode_url = fake.url
        yield fake


def command_payload(sender: SlackSender, user_id: str, text: str) -> dict:
    """A slash command envelope's payload: the fields of the HTTP form post."""
    return dict(parse_qsl(sender.command_body(user_id, text), keep_blank_values=True))


def click_payload(sender: SlackSender, user_id: str, action_id: str, value: str) -> dict:
    """An interactive envelope's payload: the JSON of the HTTP post's `payload` field."""
    return json.loads(parse_qs(sender.click_body(user_id, action_id, value))["payload"][0])


# socket_mode comes before start_bot, so the bot is stopped before its server goes away.
def test_request_and_approval_over_socket_mode(socket_mode, start_bot, slack, aws):
    bot = start_bot(SLACK_APP_TOKEN=APP_TOKEN)  # returns once /healthz answers on PORT
    socket_mode.wait_connected()
    assert [call.token for call in slack.calls("apps.connections.open")] == [APP_TOKEN]
    [path] = socket_mode.paths
    assert socket_mode.ticket in path  # it connected to the URL that call handed out
    # Builds the same payloads as the HTTP tests; nothing is posted to /slack/events here.
    payloads = SlackSender(bot.url, slack.url)

    # the listeners' shape checks hold here too: a click without a user id is not acked
    malformed = click_payload(payloads, "U0BOB", ActionId.APPROVE, "1")
    malformed["user"]["id"] = 42
    with pytest.raises(TimeoutError):
        socket_mode.wait_for_ack(socket_mode.send_envelope("interactive", malformed), 1.0)
    assert "malformed Slack payload (block_actions): user id" in bot.log()

    envelope_id = socket_mode.send_envelope(
        "slash_commands", command_payload(payloads, "U0ALICE", "prod-admins 1h via socket mode"))
    answer = socket_mode.wait_for_ack(envelope_id)["payload"]
    assert answer["response_type"] == "ephemeral"
    assert "Got it: prod-admins" in read(answer)

    approver_copy = slack.wait_for(lambda: slack.dm("U0BOB"))[-1]
    assert "@U0ALICE requests prod-admins for 1h" in read(approver_copy)
    assert "via socket mode" in read(approver_copy) and "[Approve] [Approve for less…] [Deny]" \
        in read(approver_copy)
    waiting = dm_containing(slack, "U0ALICE", "for prod-admins (")
    request_id = int(waiting.split("Request #")[1].split()[0])

    click_id = socket_mode.send_envelope(
        "interactive", click_payload(payloads, "U0BOB", ActionId.APPROVE, str(request_id)))
    socket_mode.wait_for_ack(click_id)
    slack.wait_for(lambda: "alice" in members(aws))
    dm_containing(slack, "U0ALICE", "You have prod-admins until")

    socket_mode.ping()  # the keepalive: an app that stops answering pings is dropped
    assert socket_mode.connections == 1 and len(socket_mode.paths) == 1  # never reconnected
    assert bot.healthy()


def test_a_socket_mode_url_that_cannot_be_reached_stops_the_bot(slack, bot_env):
    from tests.fakes.harness import free_port, run_bot_command

    slack.socket_mode_url = f"ws://127.0.0.1:{free_port()}/link/?ticket=gone"
    result = run_bot_command({**bot_env, "SLACK_APP_TOKEN": APP_TOKEN, "PORT": str(free_port())})
    assert result.returncode == 2
    assert "SLACK_APP_TOKEN: Slack gave a Socket Mode URL, but connecting to it failed" \
        in result.stderr


def test_a_refused_app_token_stops_the_bot(slack, bot_env):
    from tests.fakes.harness import free_port, run_bot_command

    slack.fail("apps.connections.open", error="invalid_auth")
    result = run_bot_command({**bot_env, "SLACK_APP_TOKEN": APP_TOKEN, "PORT": str(free_port())})
    assert result.returncode == 2
    assert "SLACK_APP_TOKEN: could not open a Socket Mode connection" in result.stderr
