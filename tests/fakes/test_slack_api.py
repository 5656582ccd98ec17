import json
import time
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_api import FakeSlack, render_text


@pytest.fixture
def fake():
    with FakeSlack(users={"U0BOB": {"email": "bob@example.com", "name": "Bob"}}) as f:
        yield f


@pytest.fixture
def client(fake):
    return WebClient(token="xoxb-test", base_url=fake.api_url, retry_handlers=[])


def test_auth_test(client, fake):
    assert client.auth_test()["user_id"] == "U0BOT"
    assert fake.calls("auth.test")[0].token == "xoxb-test"


def test_post_message_to_user_lands_in_dm(client, fake):
    first = client.chat_postMessage(channel="U0BOB", text="hello")
    second = client.chat_postMessage(channel="U0BOB", text="again")
    assert first["channel"] == "D0BOB"
    assert float(second["ts"]) > float(first["ts"])
    assert [m["text"] for m in fake.dm("U0BOB")] == ["hello", "again"]
    assert fake.calls("chat.postMessage")[0].args == {"channel": "U0BOB", "text": "hello"}


def test_update_changes_stored_message(client, fake):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "pending"}}]
    posted = client.chat_postMessage(channel="C1", text="pending", blocks=blocks)
    client.chat_update(channel="C1", ts=posted["ts"], text="approved", blocks=[])
    [msg] = fake.messages("C1")
    assert (msg["ts"], msg["text"], msg["blocks"]) == (posted["ts"], "approved", [])
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_blocks_sent_as_form_json_are_decoded(client, fake):
    blocks = [{"type": "divider"}]
    client.api_call("chat.postMessage", params={"channel": "C1", "blocks": json.dumps(blocks)})
    assert fake.calls("chat.postMessage")[0].args["blocks"] == blocks
    assert fake.messages("C1")[0]["blocks"] == blocks
    client.views_open(trigger_id="t", view=json.dumps({"type": "modal"}))
    assert fake.calls("views.open")[0].args["view"] == {"type": "modal"}


def test_conversations_open_and_views(client):
    assert client.conversations_open(users="U0BOB")["channel"]["id"] == "D0BOB"
    view = client.views_open(trigger_id="t", view={"type": "modal", "title": "x"})["view"]
    assert view["id"].startswith("V") and view["type"] == "modal"
    updated = client.views_update(view_id=view["id"], view={"type": "modal"})["view"]
    assert updated["id"] == view["id"]


def test_users_info(client, fake):
    user = client.users_info(user="U0BOB")["user"]
    assert user["profile"]["email"] == "bob@example.com" and user["real_name"] == "Bob"
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"
    fake.add_user("U0CAT", email="cat@example.com")
    assert client.users_info(user="U0CAT")["user"]["profile"]["email"] == "cat@example.com"


def test_fail_ratelimited_then_recovers(client, fake):
    fake.fail("chat.postMessage", times=1)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    fake.fail("chat.postEphemeral", error="channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            client.chat_postEphemeral(channel="C1", user="U0BOB", text="x")
    assert client.chat_postEphemeral(channel="C1", user="U0BOB", text="x")["message_ts"]


def test_response_url_posts_are_recorded(client, fake):
    posted = client.chat_postMessage(channel="C1", text="request")
    url = fake.response_url("abc", channel="C1", ts=posted["ts"])
    assert url == fake.url + "/response/abc"
    body = json.dumps({"replace_original": True, "text": "done"}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert json.load(resp) == {"ok": True}
    [call] = fake.calls("response_url")
    assert call.args == {"key": "abc", "replace_original": True, "text": "done"}
    assert fake.messages("C1")[0]["text"] == "done"


def test_unknown_method_is_ok_and_recorded(client, fake):
    assert client.api_call("reactions.add", json={"name": "eyes"})["ok"]
    assert fake.calls("reactions.add")[0].args == {"name": "eyes"}
    fake.clear()
    assert fake.calls() == []


def test_latency(client, fake):
    fake.latency = 0.2
    start = time.monotonic()
    client.auth_test()
    assert time.monotonic() - start >= 0.2


def test_wait_for(fake, client):
    client.chat_postMessage(channel="U0BOB", text="hi")
    assert fake.wait_for(lambda: fake.dm("U0BOB"))[0]["text"] == "hi"
    with pytest.raises(TimeoutError, match="chat.postMessage"):
        fake.wait_for(lambda: fake.dm("U0NOBODY"), timeout=0.1)


def test_render_text():
    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Access request"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "<@U0BOB> wants *admin*"},
             "fields": [{"type": "mrkdwn", "text": "*Account:* prod"},
                        {"type": "plain_text", "text": "Duration: 1h"}]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "text": {"type": "plain_text", "text": "Deny"}}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "id 42"}]},
        ],
    }
    assert render_text(message) == (
        "Access request\n@U0BOB wants *admin*\n*Account:* prod\nDuration: 1h\n"
        "[Approve] [Deny]\nid 42"
    )
    assert render_text({"text": "hi <@U0BOB>", "blocks": []}) == "hi @U0BOB"


def test_views_publish_keeps_each_users_home(client, fake):
    view = {"type": "home", "blocks": [{"type": "section",
                                        "text": {"type": "mrkdwn", "text": "hi"}}]}
    assert fake.home("U0BOB") is None
    answer = client.views_publish(user_id="U0BOB", view=view)
    assert answer["view"]["type"] == "home" and answer["view"]["id"].startswith("V")
    assert fake.home("U0BOB")["blocks"] == view["blocks"]
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        client.views_publish(user_id="U0BOB", view={"type": "modal", "blocks": []})
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        client.views_publish(user_id="U0NOBODY", view=view)
    fake.home_tab = False  # an app whose manifest does not enable the Home tab
    with pytest.raises(SlackApiError, match="not_enabled"):
        client.views_publish(user_id="U0BOB", view=view)


def test_usergroups_users_list(client, fake):
    fake.set_usergroup("S0SRE", ["U0BOB", "U0CAROL"])
    assert client.usergroups_users_list(usergroup="S0SRE")["users"] == ["U0BOB", "U0CAROL"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S0NONE")
    assert err.value.response["error"] == "no_such_subteam"
