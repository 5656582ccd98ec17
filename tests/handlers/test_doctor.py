"""`accessbot doctor`'s Slack checks, against the fake Slack Web API over HTTP."""

import socket

import pytest
from slack_sdk import WebClient

from accessbot.handlers.doctor import BOT_SCOPES, slack_checks
from accessbot.services.catalog import parse_catalog
from tests.fakes.slack_api import FakeSlack, manifest_scopes

CONFIG = {
    "approval_channel": "C0APPROVALS", "admin_channel": "C0SECURITY",
    "resources": {
        "ops": {"kind": "iam_group", "group": "ops", "approvers": ["U0BOB", "U0DAVE"]},
        "db": {"kind": "iam_role", "role": "Db", "approvers": ["U0BOB"],
               "requesters": ["U0ALICE"]},
    },
}


@pytest.fixture
def slack():
    with FakeSlack(users={u: {} for u in ("U0ALICE", "U0BOB", "U0DAVE")}) as fake:
        yield fake


def lines(slack: FakeSlack, config: dict = CONFIG) -> list[str]:
    client = WebClient(token="xoxb-test", base_url=slack.api_url)
    return [check.line() for check in slack_checks(client, parse_catalog(config))]


def test_the_bot_needs_exactly_the_scopes_the_manifest_asks_for():
    assert sorted(BOT_SCOPES) == sorted(manifest_scopes())


def test_an_app_installed_from_the_manifest_passes(slack):
    assert lines(slack) == [
        "✓ Slack token: @accessbot in Fake",
        f"✓ Slack scopes: the manifest's {len(BOT_SCOPES)}",
        "✓ approval channel C0APPROVALS (#c0approvals): the bot is in it",
        "✓ admin channel C0SECURITY (#c0security): the bot is in it",
        "✓ approvers and requesters: 3 Slack users",
    ]


def test_a_missing_scope_is_named_with_the_fix(slack):
    slack.scopes = [s for s in slack.scopes if s not in ("users:read.email", "groups:read")]
    assert lines(slack)[1] == ("✗ Slack scopes: missing users:read.email, groups:read: add "
                               "them under OAuth & Permissions (or update the app from "
                               "slack-manifest.yml) and reinstall the app to the workspace")


def test_a_channel_without_the_bot_says_invite_it(slack):
    slack.channels_without_bot.add("C0SECURITY")
    assert lines(slack)[3] == ("✗ admin channel C0SECURITY (#c0security): the bot is not in it: "
                               "invite it: /invite @accessbot in that channel")


def test_a_channel_that_does_not_exist(slack):
    slack.missing_channels.add("C0APPROVALS")
    assert lines(slack)[2].startswith("✗ approval channel C0APPROVALS: no such channel, or a "
                                      "private one the bot is not in: correct the id")


def test_people_who_are_not_users_or_are_deactivated_are_named_with_their_resources(slack):
    slack.add_user("U0DAVE", deleted=True)
    config = {**CONFIG, "resources": {**CONFIG["resources"], "web": {
        "kind": "iam_group", "group": "web", "approvers": ["U0NOBODY", "U0BOB"]}}}
    assert lines(slack, config)[-1] == (
        "✗ approvers and requesters: U0DAVE (ops) is deactivated; U0NOBODY (web) is not a "
        "Slack user: correct the config (a member id: the person's Slack profile, ⋮, Copy "
        "member ID)")


def test_a_refused_token_is_one_line_and_nothing_else_is_asked(slack):
    slack.fail("auth.test", "invalid_auth")
    assert lines(slack) == ["✗ Slack token: refused (invalid_auth): set SLACK_BOT_TOKEN to "
                            "the app's Bot User OAuth Token (xoxb-...)"]
    assert [c.method for c in slack.calls()] == ["auth.test"]


def test_slack_unreachable_is_not_called_a_bad_token():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = WebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{port}/api/", timeout=2)
    [check] = slack_checks(client, parse_catalog(CONFIG))
    assert not check.ok and check.what.startswith(f"Slack: no answer at http://127.0.0.1:{port}")
    assert check.fix == "check this host's network access to Slack (or SLACK_API_URL)"


def test_user_groups_among_approvers_and_admins_are_checked_for_members(slack):
    slack.set_usergroup("S0SRE", ["U0BOB"])
    slack.set_usergroup("S0EMPTY", [])
    config = {**CONFIG, "admins": ["S0NONE"], "resources": {**CONFIG["resources"], "web": {
        "kind": "iam_group", "group": "web", "approvers": ["S0SRE", "S0EMPTY"]}}}
    assert lines(slack, config)[-2:] == [
        "✓ approvers and requesters: 3 Slack users",
        "✗ user groups: S0EMPTY (web) has no members; S0NONE (admins): Slack said "
        "no_such_subteam: correct the config (a user group's id: S..., from its page in Slack)"]
    slack.set_usergroup("S0EMPTY", ["U0DAVE"])
    slack.set_usergroup("S0NONE", ["U0DAVE"])
    assert lines(slack, config)[-1] == "✓ user groups: 3, each with members"
