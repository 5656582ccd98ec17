"""IamCredentials' roles against moto, and the RoleDetail shapes the real API returns (moto
leaves RoleLastUsed empty) through botocore's Stubber."""

import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import boto3
import pytest
from botocore.client import BaseClient
from botocore.stub import Stubber

from accessbot.aws.accounts import AccountCredentials
from accessbot.aws.credentials import IamCredentials
from accessbot.services.ports import ProviderError
from accessbot.services.role_hygiene import open_trust

OWN, OTHER = "123456789012", "999988887777"


def trust(principal) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def credentials(iam: BaseClient) -> IamCredentials:
    return IamCredentials(iam, sleep=lambda seconds: None)


def test_roles_have_their_session_trust_tags_and_path(credentials, admin):
    admin.create_role(RoleName="ci", AssumeRolePolicyDocument=trust({"AWS": OTHER}),
                      MaxSessionDuration=43200,
                      Tags=[{"Key": "Owner", "Value": " U0ALICE "}])
    admin.create_role(RoleName="app", Path="/apps/",
                      AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}))

    roles = {role.name: role for role in credentials.roles()}

    assert set(roles) == {"ci", "app"}
    ci, app = roles["ci"], roles["app"]
    assert ci.max_session == 43200 and app.max_session == 3600  # IAM's default
    assert ci.tags == {"owner": "U0ALICE"}  # keys lowercased, values trimmed
    assert ci.arn == f"arn:aws:iam::{OWN}:role/ci" and ci.account == OWN
    assert app.path == "/apps/" and app.tags == {}
    assert open_trust(ci.trust_policy, OWN) == [f"account {OTHER}"]
    assert open_trust(app.trust_policy, OWN) == []
    assert ci.created.tzinfo is UTC and ci.last_used is None  # moto never records a use


def test_roles_cost_one_page_of_each_call_for_many_roles(iam, admin):
    for n in range(120):  # more than either call's default page (100)
        admin.create_role(RoleName=f"r{n}", AssumeRolePolicyDocument=trust("*"))
    credentials = IamCredentials(iam)
    assert len(credentials.roles()) == 120
    assert credentials.api_calls == 2


def test_max_session_is_read_live_and_a_gone_role_is_none(credentials, admin):
    admin.create_role(RoleName="ci", AssumeRolePolicyDocument=trust("*"),
                      MaxSessionDuration=7200)
    assert credentials.max_session("ci") == 7200
    assert credentials.max_session("nobody") is None


def test_cap_session_sets_the_maximum_and_a_gone_role_is_false(credentials, admin):
    admin.create_role(RoleName="ci", AssumeRolePolicyDocument=trust("*"),
                      MaxSessionDuration=43200)
    assert credentials.cap_session("ci", 3600) is True
    assert admin.get_role(RoleName="ci")["Role"]["MaxSessionDuration"] == 3600
    assert credentials.cap_session("nobody", 3600) is False


def test_another_accounts_roles_go_through_its_wrapper(credentials, admin):
    admin.create_role(RoleName="ci", AssumeRolePolicyDocument=trust("*"),
                      MaxSessionDuration=7200)
    other = AccountCredentials(credentials, OTHER)
    assert [role.name for role in other.roles()] == ["ci"]
    assert other.max_session("ci") == 7200
    assert other.cap_session("ci", 3600) and other.max_session("ci") == 3600


# The shapes of the real API, which moto does not fill in


def _stubbed() -> tuple[IamCredentials, Stubber]:
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    return IamCredentials(client), Stubber(client)


CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
DOCUMENT = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
     "Action": "sts:AssumeRole"}]}


def _detail(name: str, **extra) -> dict:
    return {"RoleName": name, "RoleId": "AROAEXAMPLE0000000001", "Path": "/",
            "Arn": f"arn:aws:iam::{OWN}:role/{name}", "CreateDate": CREATED, **extra}


def _listed(name: str, seconds: int) -> dict:
    return {"RoleName": name, "RoleId": "AROAEXAMPLE0000000001", "Path": "/",
            "Arn": f"arn:aws:iam::{OWN}:role/{name}", "CreateDate": CREATED,
            "MaxSessionDuration": seconds}


def test_last_use_and_an_url_encoded_trust_policy_are_read():
    credentials, stub = _stubbed()
    used = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    stub.add_response("list_roles", {"Roles": [_listed("used", 3600), _listed("never", 7200),
                                               _listed("gone", 3600)]})
    stub.add_response("get_account_authorization_details", {"RoleDetailList": [
        # IAM sends policy documents URL-encoded; a role never used has an empty RoleLastUsed
        _detail("used", AssumeRolePolicyDocument=quote(json.dumps(DOCUMENT)),
                RoleLastUsed={"LastUsedDate": used, "Region": "eu-west-1"},
                Tags=[{"Key": "slack-user-id", "Value": "U0BOB"}]),
        _detail("never", AssumeRolePolicyDocument=json.dumps(DOCUMENT), RoleLastUsed={}),
        # created after ListRoles answered: left to the next run
        _detail("new", AssumeRolePolicyDocument=json.dumps(DOCUMENT)),
    ], "IsTruncated": False})
    with stub:
        roles = {role.name: role for role in credentials.roles()}
    stub.assert_no_pending_responses()

    assert set(roles) == {"used", "never"}
    assert roles["used"].last_used == datetime(2026, 3, 4, 3, 6, 7, tzinfo=UTC)
    assert roles["used"].last_used.tzinfo is UTC
    assert roles["used"].last_used_region == "eu-west-1"
    assert roles["used"].trust_policy == DOCUMENT
    assert roles["used"].tags == {"slack-user-id": "U0BOB"}
    assert roles["never"].last_used is None and roles["never"].last_used_region is None
    assert roles["never"].max_session == 7200 and roles["never"].created == CREATED


def test_a_refused_read_is_a_provider_error():
    credentials, stub = _stubbed()
    stub.add_client_error("list_roles", "AccessDenied", "not allowed", 403)
    with stub, pytest.raises(ProviderError, match="reading IAM roles.*AccessDenied"):
        credentials.roles()


def test_a_refused_cap_is_a_provider_error():
    credentials, stub = _stubbed()
    stub.add_client_error("update_role", "AccessDenied", "not allowed", 403)
    with stub, pytest.raises(ProviderError, match="maximum session of IAM role ci"):
        credentials.cap_session("ci", 3600)
