"""IAM kinds in another account, over HTTP: the bot assumes the account's role (moto's
AssumeRole credentials act in that account) and grants and revokes there; an account whose
role is refused (by a proxy in front of moto, which never refuses) holds up only itself."""

import copy

import pytest
import yaml

from accessbot.handlers.ids import ActionId
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import dm_containing, read, request_via_command
from tests.fakes.harness import SlackSender
from tests.fakes.latency_proxy import LatencyProxy

pytestmark = pytest.mark.e2e

PROD = "222222222222"
CONFIG = copy.deepcopy(E2E_CONFIG) | {
    "accounts": {"prod": {"id": PROD, "role_arn": f"arn:aws:iam::{PROD}:role/accessbot",
                          "external_id": "accessbot-e2e"}},
}
CONFIG["resources"] |= {
    "prod-ops": {"kind": "iam_group", "group": "ops", "account": "prod",
                 "approvers": ["U0BOB"], "min_duration": "1s"},
}


STAGING = "333333333333"
STAGING_ROLE = f"arn:aws:iam::{STAGING}:role/accessbot"


def account_iam(moto_server, account: str, user: str):
    """IAM of an account, as the bot will see it: `user` (tagged as alice's), group ops."""
    import boto3

    sts = moto_server.client("sts")
    found = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/accessbot",
                            RoleSessionName="setup")["Credentials"]
    iam = boto3.client("iam", endpoint_url=moto_server.url, region_name="us-east-1",
                       aws_access_key_id=found["AccessKeyId"],
                       aws_secret_access_key=found["SecretAccessKey"],
                       aws_session_token=found["SessionToken"])
    iam.create_user(UserName=user, Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    iam.create_group(GroupName="ops")
    return iam


@pytest.fixture
def prod_iam(moto_server, aws):
    """Account 222222222222's IAM. The bot's own account (123456789012) has an alice too,
    and no group ops."""
    return account_iam(moto_server, PROD, "alice-prod")


def members(iam) -> set[str]:
    return {u["UserName"] for u in iam.get_group(GroupName="ops")["Users"]}


def test_a_group_in_another_account_is_granted_there_and_revoked_at_expiry(
        start_bot, tmp_path, slack, prod_iam, aws):
    config = tmp_path / "accounts.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    bot = start_bot(ACCESSBOT_CONFIG=str(config))
    sender = SlackSender(bot.url, slack.url)

    request_id = request_via_command(sender, slack, text="prod-ops 5s fix the prod queue")
    assert sender.click("U0BOB", ActionId.APPROVE, str(request_id)).status == 200
    slack.wait_for(lambda: members(prod_iam) == {"alice-prod"})  # the user of that account
    dm_containing(slack, "U0ALICE", "You have prod-ops until")
    assert "ops" not in {g["GroupName"] for g in aws.list_groups()["Groups"]}

    slack.wait_for(lambda: members(prod_iam) == set(), timeout=20)
    dm_containing(slack, "U0ALICE", "ended", timeout=10)


def test_an_account_whose_role_is_refused_holds_up_only_itself(
        start_bot, tmp_path, slack, moto_server, prod_iam, aws):
    staging_iam = account_iam(moto_server, STAGING, "alice-staging")
    config = copy.deepcopy(CONFIG) | {"sweep_interval": "1s"}
    config["accounts"]["staging"] = {"id": STAGING, "role_arn": STAGING_ROLE}
    config["resources"]["staging-ops"] = {**config["resources"]["prod-ops"],
                                          "account": "staging"}
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(config))

    def alerts(account: str) -> list[str]:  # about its role (not, say, its account audit)
        return [t for t in map(read, slack.messages("C0SECURITY")) if account in t
                and ("assume its role" in t or "answers again" in t)]

    with LatencyProxy(moto_server.url) as proxy:
        proxy.refused_roles.add(STAGING_ROLE)
        bot = start_bot(ACCESSBOT_CONFIG=str(path), AWS_ENDPOINT_URL=proxy.url)
        sender = SlackSender(bot.url, slack.url)

        # staging's request cannot find alice's user there: it waits, and the admins hear
        reply = sender.command("U0ALICE", "staging-ops 1h deploy to staging")
        assert "Got it: staging-ops" in read(reply.json())
        [alert] = slack.wait_for(lambda: alerts(STAGING) or None)
        assert "cannot assume its role" in alert and "AccessDenied" in alert

        # prod is untouched by it
        request_id = request_via_command(sender, slack, text="prod-ops 1h fix the prod queue")
        sender.click("U0BOB", ActionId.APPROVE, str(request_id))
        slack.wait_for(lambda: members(prod_iam) == {"alice-prod"})

        # every sweep tries staging again; the admins are not told again
        slack.wait_for(lambda: proxy.injected.get("AssumeRole refused", 0) >= 4, timeout=20)
        assert len(alerts(STAGING)) == 1
        assert not alerts(PROD)

        # the role is trusted again: the request reaches the approvers, and is granted there
        proxy.refused_roles.clear()
        dm = dm_containing(slack, "U0ALICE", "for staging-ops (", timeout=20)
        staging_id = int(dm.split("Request #")[1].split()[0])
        sender.click("U0BOB", ActionId.APPROVE, str(staging_id))
        slack.wait_for(lambda: members(staging_iam) == {"alice-staging"})
        slack.wait_for(lambda: any("answers again" in t for t in alerts(STAGING)))
        assert len(alerts(STAGING)) == 2
        assert members(prod_iam) == {"alice-prod"}
