"""End-to-end fixtures: the bot as a subprocess, a moto server, the fake Slack Web API."""

import pytest
import yaml

from tests.fakes.harness import BOT_TOKEN, SIGNING_SECRET, BotProcess, SlackSender
from tests.fakes.slack_api import FakeSlack

# Short durations so that the whole loop, warning included, runs in seconds.
E2E_CONFIG = {
    "approval_channel": "C0APPROVALS",
    "admin_channel": "C0SECURITY",
    "resources": {
        "prod-admins": {
            "description": "Administrator access to production",
            "kind": "iam_group", "group": "prod-admins", "approvers": ["U0BOB", "U0DAVE"],
            "default_duration": "1h", "min_duration": "1s", "max_duration": "4h",
            "expiry_warning": "2s",
        },
        "prod-readonly": {
            "kind": "iam_role", "role": "ProdReadOnly", "approvers": ["U0BOB"],
            "min_duration": "1s", "max_duration": "8h",
        },
        "staging-admins": {  # its IAM group does not exist: grants fail
            "kind": "iam_group", "group": "staging-admins", "approvers": ["U0BOB"],
        },
    },
    # not scheduled: its DMs would mix with every test's (run-job still runs it)
    "review": {"enabled": False},
}


@pytest.fixture
def aws(moto_server):
    """A clean account: alice (tagged by Slack id), carol (by email), a group and a role."""
    moto_server.reset()
    iam = moto_server.iam()
    iam.create_user(UserName="alice", Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    iam.create_user(UserName="carol", Tags=[{"Key": "email", "Value": "carol@example.com"}])
    iam.create_group(GroupName="prod-admins")
    iam.create_role(RoleName="ProdReadOnly", AssumeRolePolicyDocument='{"Version":"2012-10-17",'
                    '"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:'
                    'root"},"Action":"sts:AssumeRole"}]}')
    return iam


@pytest.fixture
def slack():
    with FakeSlack(users={"U0ALICE": {"email": "alice@example.com"},
                          "U0CAROL": {"email": "Carol@Example.com"},
                          "U0BOB": {"email": "bob@example.com"},
                          "U0DAVE": {"email": "dave@example.com"}}) as fake:
        yield fake


@pytest.fixture
def bot_env(tmp_path, moto_server, slack):
    config = tmp_path / "accessbot.yaml"
    config.write_text(yaml.safe_dump(E2E_CONFIG))
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url, "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "ACCESSBOT_CONFIG": str(config), **moto_server.env(),
    }


@pytest.fixture
def start_bot(tmp_path, bot_env, aws):
    """Start `python bot.py`; every bot started is stopped at the end of the test."""
    bots = []

    def start(**overrides) -> BotProcess:
        bot = BotProcess({**bot_env, **overrides}, tmp_path / f"bot{len(bots)}.log").start()
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop()


@pytest.fixture
def bot(start_bot):
    return start_bot()


@pytest.fixture
def sender(bot, slack):
    return SlackSender(bot.url, slack.url)
