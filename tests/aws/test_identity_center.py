"""IdentityCenter against moto (sso-admin, identitystore), read back with plain clients;
the status polling and the errors moto does not produce, with botocore's Stubber."""

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from accessbot.aws.identity_center import IdentityCenter, make_identity_center
from accessbot.aws.providers import ByKind
from accessbot.aws.session import make_client
from accessbot.services.catalog import IdentityCenter as Settings
from accessbot.services.ports import GrantSpec, PartlyDone, ProviderError

EXPIRES = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PROD, STAGING = "222222222222", "333333333333"
REQUEST = "0d3c1a0e-8f5b-4c1a-9d2e-3b4a5c6d7e8f"


@pytest.fixture
def world(aws_env):
    """An Identity Center instance with a user, a group and a permission set."""
    with mock_aws():
        sso, ids = boto3.client("sso-admin"), boto3.client("identitystore")
        instance = sso.list_instances()["Instances"][0]
        store = instance["IdentityStoreId"]
        user = ids.create_user(IdentityStoreId=store, UserName="alice@example.com",
                               DisplayName="Alice", Name={"GivenName": "A", "FamilyName": "L"},
                               Emails=[{"Value": "alice@example.com", "Primary": True}])["UserId"]
        group = ids.create_group(IdentityStoreId=store, DisplayName="oncall")["GroupId"]
        permission_set = sso.create_permission_set(
            Name="AdministratorAccess", InstanceArn=instance["InstanceArn"]
        )["PermissionSet"]["PermissionSetArn"]
        yield {"sso": sso, "ids": ids, "instance": instance["InstanceArn"], "store": store,
               "user": user, "group": group, "permission_set": permission_set,
               "adapter": make_identity_center(Settings(), connections=4)}


def assignments(world, account: str) -> list[str]:
    return [a["PrincipalId"] for a in world["sso"].list_account_assignments(
        InstanceArn=world["instance"], AccountId=account,
        PermissionSetArn=world["permission_set"])["AccountAssignments"]]


def members(world) -> set[str]:
    return {m["MemberId"]["UserId"] for m in world["ids"].list_group_memberships(
        IdentityStoreId=world["store"], GroupId=world["group"])["GroupMemberships"]}


def ps_spec(world, *accounts: str, target: str = "AdministratorAccess") -> GrantSpec:
    return GrantSpec(1, world["user"], "sso_permission_set", target, EXPIRES, accounts)


def test_a_permission_set_is_assigned_in_every_account_and_removed(world):
    adapter = world["adapter"]
    adapter.grant(ps_spec(world, PROD, STAGING))
    adapter.grant(ps_spec(world, PROD, STAGING))  # again (a retry after a crash): once
    assert assignments(world, PROD) == assignments(world, STAGING) == [world["user"]]

    adapter.revoke(ps_spec(world, PROD, STAGING))
    assert assignments(world, PROD) == assignments(world, STAGING) == []
    adapter.revoke(ps_spec(world, PROD, STAGING))  # gone already: success


def test_a_permission_set_is_found_by_name_or_arn(world):
    adapter = world["adapter"]
    assert adapter.permission_set_arn("AdministratorAccess") == world["permission_set"]
    assert adapter.permission_set_arn(world["permission_set"]) == world["permission_set"]
    with pytest.raises(ProviderError, match="no permission set called ReadOnly") as refused:
        adapter.grant(ps_spec(world, PROD, target="ReadOnly"))
    assert refused.value.retryable is False


def test_a_group_membership_is_added_once_and_removed(world):
    adapter = world["adapter"]
    spec = GrantSpec(2, world["user"], "sso_group", "oncall", EXPIRES)
    adapter.grant(spec)
    adapter.grant(spec)  # a member already: success
    assert members(world) == {world["user"]}

    adapter.revoke(spec)
    assert members(world) == set()
    adapter.revoke(spec)  # not a member any more: success
    by_id = GrantSpec(3, world["user"], "sso_group", world["group"], EXPIRES)
    adapter.grant(by_id)
    assert members(world) == {world["user"]}


def test_a_missing_group_is_a_permanent_error(world):
    with pytest.raises(ProviderError, match="no group called nobody") as refused:
        world["adapter"].grant(GrantSpec(2, world["user"], "sso_group", "nobody", EXPIRES))
    assert refused.value.retryable is False


def test_users_are_found_by_email_else_user_name_and_cached(world):
    adapter = world["adapter"]
    assert adapter.user_for_email("Alice@Example.com") == world["user"]
    assert adapter.iam_user_for("U0ALICE", "alice@example.com") == world["user"]
    assert adapter.user_for_email("nobody@example.com") is None
    assert adapter.iam_user_for("U0ALICE", None) is None


def test_a_user_not_found_is_looked_up_again_a_minute_later(world):
    now = [0.0]
    adapter = IdentityCenter(world["sso"], world["ids"], sleep=lambda _: None,
                             clock=lambda: now[0])
    assert adapter.user_for_email("bob@example.com") is None
    bob = world["ids"].create_user(IdentityStoreId=world["store"], UserName="bob",
                                   DisplayName="Bob", Name={"GivenName": "B", "FamilyName": "C"},
                                   Emails=[{"Value": "bob@example.com"}])["UserId"]
    assert adapter.user_for_email("bob@example.com") is None  # remembered for a while
    now[0] += 61
    assert adapter.user_for_email("bob@example.com") == bob


def test_the_provider_by_kind_sends_each_grant_to_its_adapter(world):
    provider = ByKind({"sso_permission_set": world["adapter"]})
    provider.grant(ps_spec(world, PROD))
    assert assignments(world, PROD) == [world["user"]]
    with pytest.raises(ProviderError, match="No provider for access kind 'iam_group'"):
        provider.grant(GrantSpec(1, "alice", "iam_group", "ops", EXPIRES))


# -- what moto does not do: an assignment in progress, failed, in conflict ---------------

INSTANCE = "arn:aws:sso:::instance/ssoins-0123456789abcdef"
PERMISSION_SET = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef"
ASSIGN = {"InstanceArn": INSTANCE, "TargetId": PROD, "TargetType": "AWS_ACCOUNT",
          "PermissionSetArn": PERMISSION_SET, "PrincipalType": "USER", "PrincipalId": "u-1"}


@pytest.fixture
def stubbed(aws_env):
    """The adapter's own clients (aws/session.py: counted like every call) on a Stubber."""
    sso, ids = make_client("sso-admin"), make_client("identitystore")
    naps = []
    with Stubber(sso) as stub:
        yield stub, IdentityCenter(sso, ids, INSTANCE, "d-0123456789", sleep=naps.append), naps
        stub.assert_no_pending_responses()


def status(state: str, reason: str | None = None) -> dict:
    found = {"Status": state, "RequestId": REQUEST}
    return found | ({"FailureReason": reason} if reason else {})


def not_assigned(stub) -> None:
    stub.add_response("list_account_assignments", {"AccountAssignments": []},
                      {"InstanceArn": INSTANCE, "AccountId": PROD,
                       "PermissionSetArn": PERMISSION_SET})


def test_an_assignment_in_progress_is_polled_until_it_succeeded(stubbed):
    stub, adapter, naps = stubbed
    not_assigned(stub)
    stub.add_response("create_account_assignment",
                      {"AccountAssignmentCreationStatus": status("IN_PROGRESS")}, ASSIGN)
    for state in ("IN_PROGRESS", "SUCCEEDED"):
        stub.add_response("describe_account_assignment_creation_status",
                          {"AccountAssignmentCreationStatus": status(state)},
                          {"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": REQUEST})
    adapter.grant(GrantSpec(1, "u-1", "sso_permission_set", PERMISSION_SET, EXPIRES, (PROD,)))
    assert naps == [1.0, 1.0]


def test_a_failed_assignment_is_an_error_that_is_retried(stubbed):
    stub, adapter, _ = stubbed
    not_assigned(stub)
    stub.add_response("create_account_assignment",
                      {"AccountAssignmentCreationStatus": status("IN_PROGRESS")}, ASSIGN)
    stub.add_response("describe_account_assignment_creation_status",
                      {"AccountAssignmentCreationStatus": status("FAILED", "quota reached")},
                      {"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": REQUEST})
    with pytest.raises(ProviderError, match="quota reached") as failed:
        adapter.grant(GrantSpec(1, "u-1", "sso_permission_set", PERMISSION_SET, EXPIRES,
                                (PROD,)))
    assert failed.value.retryable


def test_an_account_that_fails_holds_up_only_itself_and_each_result_is_said(stubbed):
    stub, adapter, _ = stubbed
    for account, outcome in ((STAGING, "FAILED"), (PROD, "SUCCEEDED")):
        stub.add_response("list_account_assignments", {"AccountAssignments": []},
                          {"InstanceArn": INSTANCE, "AccountId": account,
                           "PermissionSetArn": PERMISSION_SET})
        stub.add_response("create_account_assignment",
                          {"AccountAssignmentCreationStatus": status("IN_PROGRESS")},
                          ASSIGN | {"TargetId": account})
        stub.add_response("describe_account_assignment_creation_status",
                          {"AccountAssignmentCreationStatus": status(outcome, "not in org")},
                          {"InstanceArn": INSTANCE,
                           "AccountAssignmentCreationRequestId": REQUEST})
    with pytest.raises(PartlyDone) as partly:
        adapter.grant(GrantSpec(1, "u-1", "sso_permission_set", PERMISSION_SET, EXPIRES,
                                (STAGING, PROD)))
    assert partly.value.done == (PROD,)  # tried after staging failed
    assert list(partly.value.failed) == [STAGING] and "not in org" in partly.value.failed[STAGING]
    assert partly.value.retryable  # in place in prod: the bot keeps it until it revokes it


def test_a_conflict_is_retried_then_the_deletion_polled(stubbed):
    stub, adapter, naps = stubbed
    stub.add_client_error("delete_account_assignment", "ConflictException",
                          "another operation is in progress", expected_params=ASSIGN)
    stub.add_response("delete_account_assignment",
                      {"AccountAssignmentDeletionStatus": status("IN_PROGRESS")}, ASSIGN)
    stub.add_response("describe_account_assignment_deletion_status",
                      {"AccountAssignmentDeletionStatus": status("SUCCEEDED")},
                      {"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": REQUEST})
    adapter.revoke(GrantSpec(1, "u-1", "sso_permission_set", PERMISSION_SET, EXPIRES, (PROD,)))
    assert naps == [1, 1.0]  # the conflict's backoff, then one poll


def test_who_holds_it_is_read_for_the_account_audit(world):
    adapter = world["adapter"]
    adapter.grant(ps_spec(world, PROD))
    adapter.grant(GrantSpec(2, world["user"], "sso_group", "oncall", EXPIRES))

    assert adapter.assigned("AdministratorAccess", PROD) == {world["user"]}
    assert adapter.assigned("AdministratorAccess", STAGING) == set()
    assert adapter.members("oncall") == {world["user"]}
    assert adapter.user_name(world["user"]) == "alice@example.com"
    assert adapter.user_name("no-such-user") == "no-such-user"


def test_standing_access_is_taken_away_for_the_access_review(world):
    adapter = world["adapter"]
    adapter.grant(ps_spec(world, PROD))
    adapter.grant(GrantSpec(2, world["user"], "sso_group", "oncall", EXPIRES))
    adapter.remove_assignment("AdministratorAccess", PROD, world["user"])
    adapter.remove_member("oncall", world["user"])
    assert assignments(world, PROD) == [] and members(world) == set()
    adapter.remove_assignment("AdministratorAccess", PROD, world["user"])  # gone: success
    adapter.remove_member("oncall", world["user"])
