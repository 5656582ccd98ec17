"""IAM Identity Center end to end over HTTP: a permission set in two other accounts and an
Identity Center group, requested, approved, assigned in moto, and taken away at expiry."""

import copy

import pytest
import yaml
from sqlalchemy import select

from accessbot.handlers.ids import ActionId
from accessbot.models import Grant
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import db, dm_containing, read, request_via_command
from tests.fakes.harness import SlackSender

pytestmark = pytest.mark.e2e

PROD, STAGING = "222222222222", "333333333333"
SSO_CONFIG = copy.deepcopy(E2E_CONFIG) | {
    "accounts": {"prod": {"id": PROD}, "staging": {"id": STAGING}},
}
SSO_CONFIG["resources"] |= {
    "prod-sso-admin": {"kind": "sso_permission_set", "permission_set": "AdministratorAccess",
                       "accounts": ["prod", "staging"], "approvers": ["U0BOB"],
                       "min_duration": "1s"},
    "oncall": {"kind": "sso_group", "group": "oncall", "approvers": ["U0BOB"],
               "min_duration": "1s"},
}


@pytest.fixture
def identity_center(moto_server, aws):
    """Alice in Identity Center (by her Slack email), a group and a permission set."""
    sso, ids = moto_server.client("sso-admin"), moto_server.client("identitystore")
    instance = sso.list_instances()["Instances"][0]
    store = instance["IdentityStoreId"]
    user = ids.create_user(IdentityStoreId=store, UserName="alice", DisplayName="Alice",
                           Name={"GivenName": "Alice", "FamilyName": "L"},
                           Emails=[{"Value": "alice@example.com", "Primary": True}])["UserId"]
    group = ids.create_group(IdentityStoreId=store, DisplayName="oncall")["GroupId"]
    permission_set = sso.create_permission_set(
        Name="AdministratorAccess", InstanceArn=instance["InstanceArn"]
    )["PermissionSet"]["PermissionSetArn"]

    def assigned(account: str) -> list[str]:
        return [a["PrincipalId"] for a in sso.list_account_assignments(
            InstanceArn=instance["InstanceArn"], AccountId=account,
            PermissionSetArn=permission_set)["AccountAssignments"]]

    def members() -> list[str]:
        return [m["MemberId"]["UserId"] for m in ids.list_group_memberships(
            IdentityStoreId=store, GroupId=group)["GroupMemberships"]]

    return {"user": user, "assigned": assigned, "members": members}


@pytest.fixture
def sso_bot(start_bot, tmp_path, identity_center):
    config = tmp_path / "sso.yaml"
    config.write_text(yaml.safe_dump(SSO_CONFIG))
    return start_bot(ACCESSBOT_CONFIG=str(config))


def test_a_permission_set_in_two_accounts_is_assigned_and_removed_at_expiry(
        sso_bot, slack, identity_center, start_bot, tmp_path):
    sender = SlackSender(sso_bot.url, slack.url)
    request_id = request_via_command(sender, slack, text="prod-sso-admin 6s on-call fix")
    copy_text = read(slack.messages("C0APPROVALS")[-1]).replace("`", "")
    assert f"AdministratorAccess in {PROD}, {STAGING}" in copy_text
    assert "IAM user" not in copy_text

    assert sender.click("U0BOB", ActionId.APPROVE, str(request_id)).status == 200
    user = identity_center["user"]
    slack.wait_for(lambda: identity_center["assigned"](PROD) == [user]
                   and identity_center["assigned"](STAGING) == [user], timeout=10)
    dm = dm_containing(slack, "U0ALICE", "You have prod-sso-admin until")
    assert f"permission set AdministratorAccess in accounts {PROD}, {STAGING}" in dm.replace(
        "`", "")

    sso_bot.crash()  # the grant is in the database: the next start revokes it on time
    start_bot(ACCESSBOT_CONFIG=str(tmp_path / "sso.yaml"))
    slack.wait_for(lambda: identity_center["assigned"](PROD) == []
                   and identity_center["assigned"](STAGING) == [], timeout=20)
    dm_containing(slack, "U0ALICE", "ended", timeout=10)


def test_an_identity_center_group_membership_is_granted_and_ended_early(
        sso_bot, slack, identity_center, bot_env):
    sender = SlackSender(sso_bot.url, slack.url)
    request_id = request_via_command(sender, slack, text="oncall 1h paged for the outage")
    assert sender.click("U0BOB", ActionId.APPROVE, str(request_id)).status == 200
    slack.wait_for(lambda: identity_center["members"]() == [identity_center["user"]])
    dm_containing(slack, "U0ALICE", "member of the Identity Center group `oncall`")

    with db(bot_env)() as session:
        grant_id = session.scalar(select(Grant.id).where(Grant.request_id == request_id))
    assert sender.click("U0ALICE", ActionId.END_GRANT, str(grant_id)).status == 200
    slack.wait_for(lambda: identity_center["members"]() == [])


def test_a_requester_without_an_identity_center_user_is_told_and_nobody_is_asked(
        sso_bot, slack, identity_center):
    sender = SlackSender(sso_bot.url, slack.url)
    reply = sender.command("U0CAROL", "oncall 1h look at the logs")  # no IC user for carol
    assert reply.status == 200
    dm = dm_containing(slack, "U0CAROL", "IAM Identity Center user")
    assert "email of your Slack profile" in dm
    assert not any("oncall" in read(m) for m in slack.messages("C0APPROVALS"))
