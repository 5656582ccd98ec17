"""Accounts: the role assumed in each (moto: its credentials act in that account), and the
IAM provider that sends each grant to its account."""

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from accessbot.aws.accounts import IamByAccount, assumed_session
from accessbot.aws.directory import IamUserIndex
from accessbot.aws.iam import IamAccess
from accessbot.aws.session import make_client, new_session
from accessbot.services.catalog import Account
from accessbot.services.ports import AccountUnreachable, GrantSpec, ProviderError

EXPIRES = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PROD = Account("prod", "222222222222", "arn:aws:iam::222222222222:role/accessbot", "ext-1")


def group_spec(accounts=()) -> GrantSpec:
    return GrantSpec(1, "alice", "iam_group", "ops", EXPIRES, accounts)


def test_an_assumed_session_acts_in_its_account(iam):
    session = assumed_session(PROD)
    prod = make_client("iam", session=session)  # the adapter's
    setup = session.client("iam")  # the test's own (its calls are not the bot's)
    setup.create_user(UserName="alice")
    setup.create_group(GroupName="ops")
    assert session.client("sts").get_caller_identity()["Account"] == PROD.id

    provider = IamByAccount(IamAccess(iam), {PROD.id: IamAccess(prod)})
    provider.grant(group_spec((PROD.id,)))

    assert [u["UserName"] for u in setup.get_group(GroupName="ops")["Users"]] == ["alice"]
    here = boto3.client("iam").list_groups()["Groups"]
    assert "ops" not in {g["GroupName"] for g in here}  # not in the bot's own account
    provider.revoke(group_spec((PROD.id,)))
    assert setup.get_group(GroupName="ops")["Users"] == []


def test_the_role_is_assumed_with_the_external_id_and_refused_roles_are_retried(aws_env):
    sts = boto3.client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("assume_role", "AccessDenied", "not authorized to perform: "
                              "sts:AssumeRole", expected_params={
                                  "RoleArn": PROD.role_arn, "RoleSessionName": "accessbot",
                                  "DurationSeconds": 3600, "ExternalId": "ext-1"})
        prod = IamAccess(make_client("iam", session=assumed_session(PROD, sts)))
        with pytest.raises(ProviderError, match="AccessDenied") as refused:
            IamByAccount(IamAccess(make_client("iam")), {PROD.id: prod}).grant(
                group_spec((PROD.id,)))
    assert isinstance(refused.value, AccountUnreachable)  # retried; the admins told once
    assert (refused.value.account, refused.value.retryable) == (PROD.id, True)


def test_the_user_index_of_an_account_whose_role_is_refused_says_so(aws_env):
    sts = boto3.client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("assume_role", "AccessDenied", "not authorized to perform: "
                              "sts:AssumeRole")
        index = IamUserIndex(make_client("iam", session=assumed_session(PROD, sts)),
                             account=PROD.id)
        with pytest.raises(AccountUnreachable, match="AccessDenied") as refused:
            index.iam_user_for("U0ALICE", None)
    assert refused.value.account == PROD.id


def test_every_session_shares_the_one_copy_of_aws_service_models(aws_env):
    """IAM's model and the endpoint data take about 10 MB: a copy per account (or per
    client) would grow the worker by that much for each account configured."""
    sessions = (new_session(), new_session(), assumed_session(PROD), assumed_session(PROD))
    loaders = {session._session.get_component("data_loader") for session in sessions}

    assert len(loaders) == 1
    assert len({id(s._session.get_credentials()) for s in sessions[1:3]}) == 2  # own, prod


def test_a_grant_in_an_account_not_configured_is_refused_for_good(iam):
    with pytest.raises(ProviderError, match="Account 999999999999 is not configured") as refused:
        IamByAccount(IamAccess(iam), {}).grant(group_spec(("999999999999",)))
    assert refused.value.retryable is False
