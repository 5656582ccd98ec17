"""`/request-access list` and the App Home tab over real HTTP: one bot for every scenario."""

import json
import time

import pytest

from accessbot.handlers.ids import ActionId
from tests.e2e.test_loop import read, request_via_command

pytestmark = pytest.mark.e2e


def home_opened(user: str) -> str:
    """The Events API body Slack posts when someone opens the bot's Home tab."""
    return json.dumps({
        "token": "legacy", "team_id": "T0FAKE", "api_app_id": "A0ACCESSBOT",
        "type": "event_callback", "event_id": f"Ev{int(time.time() * 1000)}",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": f"D{user[1:]}",
                  "tab": "home", "event_ts": f"{time.time():.6f}"}})


def buttons(blocks: list[dict]) -> list[tuple[str, str]]:
    found = []
    for block in blocks:
        elements = block.get("elements", []) if block["type"] == "actions" else \
            [block["accessory"]] if "accessory" in block else []
        found += [(e["action_id"], e["value"]) for e in elements if e["type"] == "button"]
    return found


def test_list_and_home_show_the_users_grant(bot, sender, slack, aws):
    request_id = request_via_command(sender, slack, text="prod-readonly 1h read the logs")
    assert sender.click("U0BOB", ActionId.APPROVE, str(request_id)).status == 200
    grant_dm = slack.wait_for(lambda: next((m for m in slack.dm("U0ALICE")
                                            if "You have prod-readonly" in read(m)), None))
    grant_id = dict(buttons(grant_dm["blocks"]))[ActionId.END_GRANT]

    # /request-access list: an ephemeral answer through the command's response_url
    reply = sender.command("U0ALICE", "list", key="list-1")
    assert reply.status == 200
    [answer] = slack.wait_for(lambda: [c for c in slack.calls("response_url")
                                       if c.args["key"] == "list-1"])
    assert answer.args["response_type"] == "ephemeral"
    shown = read({"text": answer.args["text"], "blocks": answer.args["blocks"]})
    assert "prod-readonly: 59m left" in shown
    assert (ActionId.END_GRANT, grant_id) in buttons(answer.args["blocks"])
    assert (ActionId.EXTEND_GRANT, grant_id) in buttons(answer.args["blocks"])

    # App Home: opened, published with the same content under Request access
    opened = sender.post(home_opened("U0ALICE"), content_type="application/json")
    assert opened.status == 200
    home = slack.wait_for(lambda: slack.home("U0ALICE"))
    assert buttons(home["blocks"])[0] == (ActionId.OPEN_REQUEST_FORM, "0")
    assert (ActionId.END_GRANT, grant_id) in buttons(home["blocks"])
    assert "prod-readonly" in read(home)

    # the grant ends: the Home of someone who opened it is published again
    assert sender.click("U0ALICE", ActionId.END_GRANT, grant_id).status == 200
    slack.wait_for(lambda: "You have no live access." in read(slack.home("U0ALICE")))
    assert slack.home("U0BOB") is None  # Bob never opened Home: nothing published for him
