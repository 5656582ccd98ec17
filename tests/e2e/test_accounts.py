"""IAM kinds in another account, over HTTP: the bot assumes the account's role (moto's
AssumeRole credentials act in that account) and grants and revokes there."""

import copy

import pytest
import yaml

from accessbot.handlers.ids import ActionId
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import dm_containing, request_via_command
from tests.fakes.harness import SlackSender

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


@pytest.fixture
def prod_iam(moto_server, aws):
    """IAM of account 222222222222, as the bot will see it: alice (tagged), group ops. The
    bot's own account (123456789012) has an alice too, and no group ops."""
    import boto3

    sts = moto_server.client("sts")
    found = sts.assume_role(RoleArn=f"arn:aws:iam::{PROD}:role/accessbot",
                            RoleSessionName="setup")["Credentials"]
    iam = boto3.client("iam", endpoint_url=moto_server.url, region_name="us-east-1",
                       aws_access_key_id=found["AccessKeyId"],
                       aws_secret_access_key=found["SecretAccessKey"],
                       aws_session_token=found["SessionToken"])
    iam.create_user(UserName="alice-prod", Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    iam.create_group(GroupName="ops")
    return iam


def test_a_group_in_another_account_is_granted_there_and_revoked_at_expiry(
        start_bot, tmp_path, slack, prod_iam, aws):
    config = tmp_path / "accounts.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    bot = start_bot(ACCESSBOT_CONFIG=str(config))
    sender = SlackSender(bot.url, slack.url)

    def members() -> set[str]:
        return {u["UserName"] for u in prod_iam.get_group(GroupName="ops")["Users"]}

    request_id = request_via_command(sender, slack, text="prod-ops 5s fix the prod queue")
    assert sender.click("U0BOB", ActionId.APPROVE, str(request_id)).status == 200
    slack.wait_for(lambda: members() == {"alice-prod"})  # the user of that account
    dm_containing(slack, "U0ALICE", "You have prod-ops until")
    assert "ops" not in {g["GroupName"] for g in aws.list_groups()["Groups"]}

    slack.wait_for(lambda: members() == set(), timeout=20)
    dm_containing(slack, "U0ALICE", "ended", timeout=10)
