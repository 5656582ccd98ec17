"""Stale credentials over real connections: the job reads moto's credential report, DMs the
owner once, and the running bot deactivates the key when the owner clicks."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import select

from accessbot.handlers.ids import ActionId
from accessbot.models import JobRun, make_engine, make_session_factory
from tests.e2e.conftest import E2E_CONFIG
from tests.fakes.harness import SlackSender, run_bot_command
from tests.fakes.slack_api import dm_channel, render_text

pytestmark = pytest.mark.e2e

STALE_AFTER = timedelta(seconds=1)
HYGIENE = {"access_key_max_age": "1s", "unused_credential_age": "1s",
           "reminder_interval": "1h"}


@pytest.fixture
def hygiene_env(bot_env, tmp_path):
    """bot_env with tiny hygiene thresholds: a fresh access key is stale in two seconds."""
    config = tmp_path / "hygiene.yaml"
    config.write_text(yaml.safe_dump({**E2E_CONFIG, "hygiene": HYGIENE}))
    return {**bot_env, "ACCESSBOT_CONFIG": str(config)}


def run_stale_credentials(env: dict) -> dict:
    result = run_bot_command(env, "run-job", "stale-credentials")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["job"] == "stale-credentials"
    return output["result"]["own"]


def wait_for_first_scheduled_run(env: dict, timeout: float = 15.0,
                                 names: tuple[str, ...] = ("stale-credentials",)) -> None:
    """The bot runs stale-credentials once at start-up (in each account); let it finish
    (with nothing stale yet) so that the DM comes from the run-job below and nothing races
    the clicks."""
    sessions = make_session_factory(make_engine(env["DATABASE_URL"]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            finished = session.scalars(select(JobRun.name).where(
                JobRun.name.in_(names), JobRun.last_finished_at.is_not(None))).all()
            if len(finished) == len(names):
                return
        time.sleep(0.1)
    raise TimeoutError(f"the bot's start-up runs of {names} did not finish")


def create_key(iam, user: str) -> dict:
    return iam.create_access_key(UserName=user)["AccessKey"]


def key_status(iam, user: str, key_id: str) -> str:
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    return next(k["Status"] for k in keys if k["AccessKeyId"] == key_id)


def findings_in(message: dict) -> dict[str, dict]:
    """block_id of each finding's buttons -> the finding's text and its buttons."""
    found, text = {}, ""
    for block in message["blocks"]:
        if block["type"] == "section":
            text = block["text"]["text"]
        elif block["type"] == "actions" and block["block_id"].startswith("finding-"):
            found[block["block_id"]] = {
                "text": text, "buttons": {e["action_id"]: e for e in block["elements"]}}
    return found


def deactivate_button(message: dict, key_id: str) -> tuple[str, dict]:
    """(block_id, button) of the first finding that names this key by its last four."""
    return next((block_id, finding["buttons"][ActionId.FINDING_DEACTIVATE])
                for block_id, finding in findings_in(message).items()
                if f"...{key_id[-4:]}" in finding["text"])


def response(slack, key: str, timeout: float = 10.0) -> dict:
    calls = slack.wait_for(lambda: [c for c in slack.calls("response_url")
                                    if c.args["key"] == key], timeout=timeout)
    assert len(calls) == 1, calls
    return calls[0].args


def digest_posts(slack, channel: str) -> list:
    return [c for c in slack.calls("chat.postMessage")
            if c.args.get("channel") == channel and "stale credential" in c.args.get("text", "")]


def test_stale_key_is_told_once_and_deactivated_by_its_owner(start_bot, hygiene_env, aws,
                                                              slack):
    bot = start_bot(ACCESSBOT_CONFIG=hygiene_env["ACCESSBOT_CONFIG"])
    sender = SlackSender(bot.url, slack.url)
    wait_for_first_scheduled_run(hygiene_env)

    # alice's own key; a CI user owned by alice through its email tag; an untagged user
    aws.create_user(UserName="alice-ci", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    aws.create_user(UserName="deploy-bot")
    alice_key, ci_key, orphan_key = (create_key(aws, user)
                                     for user in ("alice", "alice-ci", "deploy-bot"))
    created = max(k["CreateDate"] for k in (alice_key, ci_key, orphan_key))
    # the report has whole seconds: past one threshold and one more second, all are stale
    time.sleep(max(0.0, (created + 2 * STALE_AFTER - datetime.now(UTC)).total_seconds()) + 0.1)

    slack.clear()  # the start-up summary and audit in the admin channel are not ours
    result = run_stale_credentials(hygiene_env)
    # each key is too old and never used: two findings per key
    assert result["findings"] == 6 and result["new"] == 6, result
    assert result["owners_told"] == 2, result  # alice, and the admin channel

    # one DM to alice listing both users' keys, by their last four characters only
    [post] = digest_posts(slack, "U0ALICE")
    [dm] = slack.dm("U0ALICE")
    shown = render_text(dm)
    for key in (alice_key, ci_key):
        assert f"...{key['AccessKeyId'][-4:]}" in shown
        assert key["AccessKeyId"] not in json.dumps(dm)
    assert "alice-ci" in shown and "deploy-bot" not in shown
    assert shown.count("[Deactivate now]") == 2  # one card per key, both reasons on it
    assert "Access key unused and access key not rotated" in shown
    [orphan_dm] = [m for m in slack.messages("C0SECURITY") if "deploy-bot" in render_text(m)]
    assert f"...{orphan_key['AccessKeyId'][-4:]}" in render_text(orphan_dm)

    # alice clicks "Deactivate now" on her own key, as Slack sends it from her DM
    block_id, button = deactivate_button(dm, alice_key["AccessKeyId"])
    assert block_id == f"finding-{button['value']}"
    reply = sender.click("U0ALICE", ActionId.FINDING_DEACTIVATE, button["value"],
                         channel=dm_channel("U0ALICE"), message_ts=dm["ts"], key="alice-click",
                         block_id=block_id)
    assert reply.status == 200 and reply.seconds < 1.5, reply
    slack.wait_for(lambda: key_status(aws, "alice", alice_key["AccessKeyId"]) == "Inactive")
    confirmation = response(slack, "alice-click")
    assert confirmation["response_type"] == "ephemeral"
    assert f"...{alice_key['AccessKeyId'][-4:]} of alice is Inactive" in confirmation["text"]

    # the DM is updated in place: alice's findings resolved and without buttons
    update = slack.wait_for(lambda: slack.calls("chat.update"))[-1]
    assert (update.args["channel"], update.args["ts"]) == (dm_channel("U0ALICE"), dm["ts"])
    [dm_after] = slack.dm("U0ALICE")
    assert dm_after["ts"] == dm["ts"]
    assert render_text(dm_after).count("key deactivated by @U0ALICE") == 1  # its one card
    assert "These credentials are yours" in render_text(dm_after)  # a DM, not a shared channel
    still_open = findings_in(dm_after)
    assert len(still_open) == 1
    assert all(f"...{ci_key['AccessKeyId'][-4:]}" in f["text"] for f in still_open.values())
    assert key_status(aws, "alice-ci", ci_key["AccessKeyId"]) == "Active"

    # bob clicks "Deactivate now" on alice's other key: refused, nothing changes
    updates = len(slack.calls("chat.update"))
    block_id, button = deactivate_button(dm_after, ci_key["AccessKeyId"])
    reply = sender.click("U0BOB", ActionId.FINDING_DEACTIVATE, button["value"],
                         channel=dm_channel("U0ALICE"), message_ts=dm["ts"], key="bob-click",
                         block_id=block_id)
    assert reply.status == 200
    refusal = response(slack, "bob-click")  # sent after the check, so moto is settled
    assert refusal["response_type"] == "ephemeral"
    assert "Only <@U0ALICE> can act on this finding" in refusal["text"]
    assert key_status(aws, "alice-ci", ci_key["AccessKeyId"]) == "Active"
    assert len(slack.calls("chat.update")) == updates

    # alice answers for alice-ci's key (one card, two findings): "I'll fix it", then "Snooze"
    [(block_id, card)] = findings_in(dm_after).items()
    for n, action in enumerate((ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE), start=1):
        reply = sender.click("U0ALICE", action, card["buttons"][action]["value"],
                             channel=dm_channel("U0ALICE"), message_ts=dm["ts"],
                             key=f"alice-{action}", block_id=block_id)
        assert reply.status == 200  # the answer is the message itself, updated in place
        slack.wait_for(lambda n=n: len(slack.calls("chat.update")) >= updates + n)
        if action is ActionId.FINDING_FIX:
            shown = render_text(slack.dm("U0ALICE")[0])
            assert "@U0ALICE will fix it" in shown
            [(_, left)] = findings_in(slack.dm("U0ALICE")[0]).items()
            assert set(left["buttons"]) == {ActionId.FINDING_DEACTIVATE, ActionId.FINDING_SNOOZE}
    # snoozed: the card (both of the key's findings) has no buttons until the snooze ends
    assert "Snoozed by @U0ALICE until" in render_text(slack.dm("U0ALICE")[0])
    assert "(snoozed once)" in render_text(slack.dm("U0ALICE")[0])
    assert findings_in(slack.dm("U0ALICE")[0]) == {}

    # at once again: still open, already told within reminder_interval, so nobody is told
    posts = len(slack.calls("chat.postMessage"))
    again = run_stale_credentials(hygiene_env)
    assert again["findings"] == 4 and again["new"] == 0 and again["owners_told"] == 0, again
    assert len(slack.calls("chat.postMessage")) == posts
    assert digest_posts(slack, "U0ALICE") == [post]
    assert key_status(aws, "alice-ci", ci_key["AccessKeyId"]) == "Active"


def test_a_stale_key_in_another_account_is_told_by_account_and_deactivated_there(
        start_bot, hygiene_env, aws, slack, moto_server, tmp_path):
    from tests.e2e.test_accounts import PROD, account_iam

    prod = account_iam(moto_server, PROD, "alice-prod")  # tagged as alice's there
    config = {**E2E_CONFIG, "hygiene": HYGIENE, "accounts": {"prod": {
        "id": PROD, "role_arn": f"arn:aws:iam::{PROD}:role/accessbot"}}}
    path = tmp_path / "hygiene-prod.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**hygiene_env, "ACCESSBOT_CONFIG": str(path)}
    bot = start_bot(ACCESSBOT_CONFIG=str(path))
    sender = SlackSender(bot.url, slack.url)
    wait_for_first_scheduled_run(env, names=("stale-credentials",
                                             f"stale-credentials:{PROD}"))

    key = create_key(prod, "alice-prod")
    time.sleep(max(0.0, (key["CreateDate"] + 2 * STALE_AFTER
                         - datetime.now(UTC)).total_seconds()) + 0.1)
    slack.clear()
    result = run_bot_command(env, "run-job", "stale-credentials")
    assert result.returncode == 0, result.stderr
    by_account = json.loads(result.stdout.strip().splitlines()[-1])["result"]
    assert by_account[PROD]["findings"] == 2, by_account  # too old and unused: one card
    assert by_account[PROD]["owners_told"] == 1

    [dm] = slack.dm("U0ALICE")
    assert f"IAM user alice-prod in account {PROD}" in render_text(dm).replace("`", "")
    block_id, button = deactivate_button(dm, key["AccessKeyId"])
    reply = sender.click("U0ALICE", ActionId.FINDING_DEACTIVATE, button["value"],
                         channel=dm_channel("U0ALICE"), message_ts=dm["ts"], key="prod-click",
                         block_id=block_id)
    assert reply.status == 200, reply
    slack.wait_for(lambda: key_status(prod, "alice-prod", key["AccessKeyId"]) == "Inactive")
    assert "of alice-prod is Inactive" in response(slack, "prod-click")["text"]
