"""IamAccess against moto: state is read back from IAM with a separate client."""

import json
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.stub import Stubber

from accessbot.aws.iam import IamAccess, assume_role_policy, policy_name, revoke_policy_name
from accessbot.aws.session import default_region, make_iam_client
from accessbot.services.ports import GrantSpec, ProviderError

EXPIRES = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
REVOKED = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
ROLE_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def group_spec(group: str = "prod-admins", user: str = "alice", grant_id: int = 1) -> GrantSpec:
    return GrantSpec(grant_id, user, "iam_group", group, EXPIRES)


def role_spec(
    target: str = "deployer", user: str = "alice", grant_id: int = 7, expires: datetime = EXPIRES
) -> GrantSpec:
    return GrantSpec(grant_id, user, "iam_role", target, expires)


def members(admin: BaseClient, group: str) -> set[str]:
    return {u["UserName"] for u in admin.get_group(GroupName=group)["Users"]}


def user_policies(admin: BaseClient, user: str) -> list[str]:
    return admin.list_user_policies(UserName=user)["PolicyNames"]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(REVOKED)


@pytest.fixture
def access(iam: BaseClient, clock: Clock) -> IamAccess:
    return IamAccess(iam, clock=clock)


@pytest.fixture
def alice(admin: BaseClient) -> str:
    admin.create_user(UserName="alice")
    admin.create_group(GroupName="prod-admins")
    return "alice"


@pytest.fixture
def role_arn(admin: BaseClient) -> str:
    return admin.create_role(RoleName="deployer", AssumeRolePolicyDocument=ROLE_TRUST)["Role"][
        "Arn"
    ]


def count_calls(client: BaseClient, operation: str) -> list[str]:
    """Record every real call of one operation on a client."""
    calls: list[str] = []
    client.meta.events.register(
        f"before-call.iam.{operation}", lambda **kwargs: calls.append(operation)
    )
    return calls


# Groups


def test_group_grant_adds_membership(access: IamAccess, admin: BaseClient, alice: str) -> None:
    assert access.grant(group_spec()) is None
    assert members(admin, "prod-admins") == {"alice"}
    assert access.group_members("prod-admins") == {"alice"}


def test_group_grant_twice_is_fine(access: IamAccess, admin: BaseClient, alice: str) -> None:
    access.grant(group_spec())
    access.grant(group_spec())
    assert [u["UserName"] for u in admin.get_group(GroupName="prod-admins")["Users"]] == ["alice"]


def test_group_revoke_removes_membership(access: IamAccess, admin: BaseClient, alice: str) -> None:
    admin.create_user(UserName="bob")
    admin.add_user_to_group(GroupName="prod-admins", UserName="bob")
    access.grant(group_spec())
    access.revoke(group_spec())
    assert members(admin, "prod-admins") == {"bob"}


def test_group_revoke_twice_or_never_granted_is_fine(
    access: IamAccess, admin: BaseClient, alice: str
) -> None:
    access.revoke(group_spec())  # never granted
    access.grant(group_spec())
    access.revoke(group_spec())
    access.revoke(group_spec())
    assert members(admin, "prod-admins") == set()


def test_group_revoke_when_user_or_group_is_gone_is_fine(access: IamAccess, alice: str) -> None:
    access.revoke(group_spec(user="deleted-user"))
    access.revoke(group_spec(group="deleted-group"))


def test_grant_to_missing_group_is_permanent(access: IamAccess, alice: str) -> None:
    with pytest.raises(ProviderError) as caught:
        access.grant(group_spec(group="no-such-group"))
    assert caught.value.retryable is False
    assert str(caught.value) == "IAM group no-such-group does not exist"


def test_grant_of_missing_user_is_permanent(access: IamAccess, alice: str) -> None:
    with pytest.raises(ProviderError) as caught:
        access.grant(group_spec(user="ghost"))
    assert caught.value.retryable is False
    assert str(caught.value) == "IAM user ghost does not exist"


def test_group_members_of_missing_group(access: IamAccess, alice: str) -> None:
    with pytest.raises(ProviderError, match="IAM group nope does not exist") as caught:
        access.group_members("nope")
    assert caught.value.retryable is False


# Roles


def read_grant_policy(admin: BaseClient, user: str, grant_id: int) -> dict:
    # boto3 URL-decodes and JSON-parses the document it gets back.
    return admin.get_user_policy(UserName=user, PolicyName=policy_name(grant_id))["PolicyDocument"]


def assert_expiring_assume_role(document: dict, arn: str, until: str) -> None:
    [statement] = document["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert statement["Resource"] == arn
    assert statement["Condition"] == {
        "DateLessThan": {"aws:CurrentTime": until},
        "StringEquals": {"sts:RoleSessionName": "${aws:username}"},
    }


def test_grant_policy_is_compact() -> None:
    arn = "arn:aws:iam::123456789012:role/deployer"
    document = assume_role_policy(arn, EXPIRES)
    assert " " not in document and "\n" not in document
    assert_expiring_assume_role(json.loads(document), arn, "2026-11-28T10:00:00Z")


def test_role_grant_by_name_puts_expiring_policy(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    assert access.grant(role_spec("deployer")) == role_arn
    assert user_policies(admin, "alice") == ["accessbot-grant-7"]
    document = read_grant_policy(admin, "alice", 7)
    assert_expiring_assume_role(document, role_arn, "2026-11-28T10:00:00Z")


def test_role_grant_with_conditions_holds_them_beside_the_time(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    spec = GrantSpec(7, "alice", "iam_role", "deployer", EXPIRES,
                     source_ips=("10.0.0.0/8", "203.0.113.7/32"), require_mfa=True)
    access.grant(spec)
    [statement] = read_grant_policy(admin, "alice", 7)["Statement"]
    assert statement["Condition"] == {
        "DateLessThan": {"aws:CurrentTime": "2026-11-28T10:00:00Z"},
        "StringEquals": {"sts:RoleSessionName": "${aws:username}"},
        "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.113.7/32"]},
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
    }


def test_role_grant_by_arn_converts_expiry_to_utc(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    paris = timezone(timedelta(hours=1))
    get_role = count_calls(access._iam, "GetRole")
    spec = role_spec(role_arn, expires=datetime(2026, 11, 28, 11, 0, 30, tzinfo=paris))
    assert access.grant(spec) == role_arn
    assert get_role == []  # an ARN needs no lookup
    document = read_grant_policy(admin, "alice", 7)
    assert_expiring_assume_role(document, role_arn, "2026-11-28T10:00:30Z")


def test_role_grant_twice_is_one_policy_and_one_lookup(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    get_role = count_calls(access._iam, "GetRole")
    access.grant(role_spec())
    access.grant(role_spec())
    access.grant(role_spec(grant_id=8))
    assert len(get_role) == 1
    assert user_policies(admin, "alice") == ["accessbot-grant-7", "accessbot-grant-8"]


def test_role_revoke_deletes_only_its_policy(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    access.grant(role_spec(grant_id=7))
    access.grant(role_spec(grant_id=8))
    access.revoke(role_spec(grant_id=7))
    assert user_policies(admin, "alice") == ["accessbot-grant-8"]


def test_role_revoke_twice_or_never_granted_is_fine(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    access.revoke(role_spec())  # never granted
    access.grant(role_spec())
    access.revoke(role_spec())
    access.revoke(role_spec())
    access.revoke(role_spec(user="deleted-user"))
    assert user_policies(admin, "alice") == []


def test_grant_of_missing_role_is_permanent(
    access: IamAccess, admin: BaseClient, alice: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        access.grant(role_spec("no-such-role"))
    assert caught.value.retryable is False
    assert str(caught.value) == "IAM role no-such-role does not exist"
    assert user_policies(admin, "alice") == []


def test_role_grant_to_missing_user_is_permanent(access: IamAccess, role_arn: str) -> None:
    with pytest.raises(ProviderError, match="IAM user ghost does not exist") as caught:
        access.grant(role_spec(user="ghost"))
    assert caught.value.retryable is False


def test_target_that_is_not_a_role_arn_is_permanent(access: IamAccess, alice: str) -> None:
    with pytest.raises(ProviderError, match="not an IAM role ARN") as caught:
        access.grant(role_spec("arn:aws:iam::123456789012:user/alice"))
    assert caught.value.retryable is False


def test_unknown_kind_is_permanent(access: IamAccess) -> None:
    spec = GrantSpec(1, "alice", "s3_bucket", "logs", EXPIRES)
    for call in (access.grant, access.revoke):
        with pytest.raises(ProviderError) as caught:
            call(spec)
        assert caught.value.retryable is False


def test_naive_expiry_is_refused(access: IamAccess, alice: str, role_arn: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        access.grant(role_spec(expires=datetime(2026, 11, 28, 10, 0)))


# Ending the sessions a user already holds


def role_policies(admin: BaseClient, role: str = "deployer") -> list[str]:
    return admin.list_role_policies(RoleName=role)["PolicyNames"]


def read_role_policy(admin: BaseClient, name: str, role: str = "deployer") -> dict:
    return admin.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]


def deny_before(user: str, cutoff: str) -> dict:
    """The revoke policy document expected for one user and cut-off."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringLike": {"aws:userid": f"*:{user}"},
                    "DateLessThan": {"aws:TokenIssueTime": cutoff},
                },
            }
        ],
    }


def put_revoke_policy(admin: BaseClient, user: str, revoked_at: datetime) -> None:
    """A revoke policy as an earlier revocation left it."""
    document = deny_before(user, revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    admin.put_role_policy(
        RoleName="deployer",
        PolicyName=f"accessbot-revoke-{user}",
        PolicyDocument=json.dumps(document),
    )


def test_role_revoke_denies_the_users_earlier_sessions(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    access.grant(role_spec())
    access.revoke(role_spec())
    assert user_policies(admin, "alice") == []
    assert role_policies(admin) == ["accessbot-revoke-alice"]
    document = read_role_policy(admin, "accessbot-revoke-alice")
    assert document == deny_before("alice", "2026-11-28T09:30:00Z")


def test_role_revoke_by_arn_puts_the_deny_on_that_role(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    access.grant(role_spec(role_arn))
    access.revoke(role_spec(role_arn))
    assert role_policies(admin) == ["accessbot-revoke-alice"]


def test_revoke_cut_off_rounds_up_to_the_next_second(
    access: IamAccess, admin: BaseClient, clock: Clock, role_arn: str
) -> None:
    clock.now = datetime(2026, 11, 28, 10, 30, 59, 1, tzinfo=timezone(timedelta(hours=1)))
    access.revoke(role_spec())
    document = read_role_policy(admin, "accessbot-revoke-alice")
    assert document == deny_before("alice", "2026-11-28T09:31:00Z")


def test_two_users_revoked_on_one_role_get_separate_policies(
    access: IamAccess, admin: BaseClient, clock: Clock, role_arn: str
) -> None:
    access.revoke(role_spec(user="alice", grant_id=7))
    clock.now = REVOKED + timedelta(minutes=5)
    access.revoke(role_spec(user="bob", grant_id=8))
    assert sorted(role_policies(admin)) == ["accessbot-revoke-alice", "accessbot-revoke-bob"]
    alice_doc = read_role_policy(admin, "accessbot-revoke-alice")
    assert alice_doc == deny_before("alice", "2026-11-28T09:30:00Z")
    bob_doc = read_role_policy(admin, "accessbot-revoke-bob")
    assert bob_doc == deny_before("bob", "2026-11-28T09:35:00Z")


def test_revoking_a_user_again_moves_their_cut_off(
    access: IamAccess, admin: BaseClient, clock: Clock, alice: str, role_arn: str
) -> None:
    get_policy = count_calls(access._iam, "GetRolePolicy")
    access.grant(role_spec(grant_id=7))
    access.revoke(role_spec(grant_id=7))
    access.revoke(role_spec(grant_id=7))
    assert get_policy == []  # their own policy is overwritten, never read
    clock.now = REVOKED + timedelta(hours=2)
    access.grant(role_spec(grant_id=8))
    access.revoke(role_spec(grant_id=8))
    assert role_policies(admin) == ["accessbot-revoke-alice"]
    document = read_role_policy(admin, "accessbot-revoke-alice")
    assert document == deny_before("alice", "2026-11-28T11:30:00Z")


def test_revoke_prunes_only_stale_accessbot_policies(
    access: IamAccess, admin: BaseClient, clock: Clock, role_arn: str
) -> None:
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    put_revoke_policy(admin, "bob", start)  # 12h and 1s old at the revocation: stale
    put_revoke_policy(admin, "carol", start + timedelta(seconds=1))  # exactly 12h: may live
    put_revoke_policy(admin, "dave", start + timedelta(hours=6))
    old_deny = json.dumps(deny_before("erin", "2020-01-01T00:00:00Z"))
    admin.put_role_policy(RoleName="deployer", PolicyName="team-deny", PolicyDocument=old_deny)
    foreign = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    )
    admin.put_role_policy(
        RoleName="deployer", PolicyName="accessbot-revoke-by-hand", PolicyDocument=foreign
    )
    clock.now = start + timedelta(hours=12, seconds=1)
    access.revoke(role_spec())
    assert sorted(role_policies(admin)) == [
        "accessbot-revoke-alice",
        "accessbot-revoke-by-hand",
        "accessbot-revoke-carol",
        "accessbot-revoke-dave",
        "team-deny",
    ]


def test_revoke_prunes_across_pages(iam: BaseClient, clock: Clock) -> None:
    stale = json.dumps(deny_before("bob", "2026-11-27T09:00:00Z"))
    fresh = json.dumps(deny_before("carol", "2026-11-28T09:00:00Z"))
    with Stubber(iam) as stub:
        stub.add_response("delete_user_policy", {})
        stub.add_response(
            "list_role_policies",
            {"PolicyNames": ["accessbot-revoke-carol"], "IsTruncated": True, "Marker": "m"},
            {"RoleName": "deployer"},
        )
        stub.add_response(
            "list_role_policies",
            {"PolicyNames": ["accessbot-revoke-bob"], "IsTruncated": False},
            {"RoleName": "deployer", "Marker": "m"},
        )
        for name, document in (("accessbot-revoke-carol", fresh), ("accessbot-revoke-bob", stale)):
            stub.add_response(
                "get_role_policy",
                {"RoleName": "deployer", "PolicyName": name, "PolicyDocument": document},
                {"RoleName": "deployer", "PolicyName": name},
            )
        stub.add_response(
            "delete_role_policy", {}, {"RoleName": "deployer", "PolicyName": "accessbot-revoke-bob"}
        )
        stub.add_response("put_role_policy", {})
        IamAccess(iam, clock=clock).revoke(role_spec())
        stub.assert_no_pending_responses()


def test_revoke_policy_pruned_meanwhile_is_fine(iam: BaseClient, clock: Clock) -> None:
    with Stubber(iam) as stub:
        stub.add_response("delete_user_policy", {})
        names = {"PolicyNames": ["accessbot-revoke-bob"], "IsTruncated": False}
        stub.add_response("list_role_policies", names)
        stub.add_client_error("get_role_policy", service_error_code="NoSuchEntity")
        stub.add_response("put_role_policy", {})
        IamAccess(iam, clock=clock).revoke(role_spec())
        stub.assert_no_pending_responses()


def test_revoke_when_the_role_is_gone_is_fine(
    access: IamAccess, admin: BaseClient, alice: str, role_arn: str
) -> None:
    access.grant(role_spec())
    admin.delete_role(RoleName="deployer")
    access.revoke(role_spec())
    access.revoke(role_spec(role_arn))
    access.revoke(role_spec("never-existed"))
    assert user_policies(admin, "alice") == []


def test_revoke_of_a_role_in_another_account_is_permanent(
    access: IamAccess, admin: BaseClient, role_arn: str
) -> None:
    other = role_arn.replace(role_arn.split(":")[4], "999999999999")
    with pytest.raises(ProviderError, match="not in this account") as caught:
        access.revoke(role_spec(other))
    assert caught.value.retryable is False
    assert role_policies(admin) == []  # the namesake here is left alone


def test_default_clock_is_now_in_utc(iam: BaseClient, admin: BaseClient, role_arn: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    IamAccess(iam).revoke(role_spec())
    after = datetime.now(UTC) + timedelta(seconds=1)
    document = read_role_policy(admin, "accessbot-revoke-alice")
    stamp = document["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert stamp.endswith("Z")
    assert before <= datetime.fromisoformat(stamp) <= after


def test_revoke_policy_names_fit_iam() -> None:
    assert revoke_policy_name("alice@example.com") == "accessbot-revoke-alice@example.com"
    long_a, long_b = "a" * 200, "a" * 199 + "b"
    assert len(revoke_policy_name(long_a)) == 128
    assert revoke_policy_name(long_a) != revoke_policy_name(long_b)
    assert revoke_policy_name(long_a) == revoke_policy_name(long_a)


# Error mapping


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("Throttling", True),
        ("LimitExceeded", True),
        ("ServiceFailure", True),
        ("AccessDenied", True),
        ("SomethingNew", True),
        ("MalformedPolicyDocument", False),
        ("InvalidInput", False),
        ("ValidationError", False),
    ],
)
def test_client_errors_map_to_provider_errors(iam: BaseClient, code: str, retryable: bool) -> None:
    access = IamAccess(iam)
    with Stubber(iam) as stub:
        stub.add_client_error("add_user_to_group", service_error_code=code, service_message="no")
        with pytest.raises(ProviderError) as caught:
            access.grant(group_spec())
    assert caught.value.retryable is retryable
    assert "alice" in str(caught.value) and "prod-admins" in str(caught.value)
    assert code in str(caught.value)


def test_revoke_errors_other_than_missing_are_raised(iam: BaseClient) -> None:
    with Stubber(iam) as stub:
        stub.add_client_error("delete_user_policy", service_error_code="AccessDenied")
        with pytest.raises(ProviderError, match="accessbot-grant-7 of IAM user alice") as caught:
            IamAccess(iam).revoke(role_spec())
    assert caught.value.retryable is True


@pytest.mark.parametrize("operation", ["list_role_policies", "get_role_policy", "put_role_policy"])
def test_role_session_errors_are_raised(iam: BaseClient, clock: Clock, operation: str) -> None:
    old = json.dumps(deny_before("bob", "2026-11-27T09:00:00Z"))
    responses = [
        ("list_role_policies", {"PolicyNames": ["accessbot-revoke-bob"], "IsTruncated": False}),
        ("get_role_policy", {"RoleName": "deployer", "PolicyName": "x", "PolicyDocument": old}),
        ("delete_role_policy", {}),
    ]
    with Stubber(iam) as stub:
        stub.add_response("delete_user_policy", {})
        for name, response in responses:
            if name == operation:
                break
            stub.add_response(name, response)
        stub.add_client_error(operation, service_error_code="AccessDenied")
        with pytest.raises(ProviderError) as caught:
            IamAccess(iam, clock=clock).revoke(role_spec())
    assert caught.value.retryable is True
    assert "sessions of IAM user alice in role deployer" in str(caught.value)
    assert "AccessDenied" in str(caught.value)


def test_unreachable_endpoint_is_retryable(aws_env: None) -> None:
    client = boto3.client(
        "iam",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(ProviderError, match="Could not reach AWS IAM") as caught:
        IamAccess(client).grant(group_spec())
    assert caught.value.retryable is True


# Session


def test_default_region_order(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert default_region() == "eu-west-3"
    monkeypatch.delenv("AWS_REGION")
    assert default_region() == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert default_region() == "us-east-1"


def test_client_retry_and_timeout_config(aws_env: None) -> None:
    client = make_iam_client()
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (5, 10)


def test_client_follows_aws_endpoint_url(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert make_iam_client().meta.endpoint_url == "http://127.0.0.1:5000"


def test_an_iam_endpoint_that_does_not_answer_raises_botocores_error_and_is_counted(
        aws_env, monkeypatch):
    """Not a TypeError from our metrics hook: botocore names the operation only in the
    after-call-error event."""
    from botocore.exceptions import EndpointConnectionError

    from accessbot.services import metrics
    from tests.fakes.harness import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    client = make_iam_client()
    counted = metrics.AWS_CALLS.labels("iam", "GetGroup", "EndpointConnectionError")
    before = counted._value.get()
    with pytest.raises(EndpointConnectionError):
        client.get_group(GroupName="ops")
    assert counted._value.get() == before + 1  # once, after botocore gave up retrying


# -- role_grants: trust_policy ------------------------------------------------------------

@pytest.fixture
def trusting(iam: BaseClient, clock: Clock) -> IamAccess:
    return IamAccess(iam, clock=clock, role_grants="trust_policy")


def trust_policy(admin: BaseClient, role: str = "deployer") -> list[dict]:
    return admin.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"]


def test_a_trust_policy_grant_names_the_user_in_the_role_and_changes_no_user(
        trusting: IamAccess, admin: BaseClient, alice: str, role_arn: str) -> None:
    from accessbot.services.ports import GrantSpec as Spec

    spec = Spec(7, "alice", "iam_role", "deployer", EXPIRES, source_ips=("10.0.0.0/8",),
                require_mfa=True)
    assert trusting.grant(spec) == role_arn
    trusting.grant(spec)  # again (a retry after a crash): one statement

    original, ours = trust_policy(admin)
    assert original["Principal"] == {"AWS": "*"}  # what the role trusted stays
    assert ours["Sid"] == "accessbotgrant7"
    assert ours["Principal"] == {"AWS": admin.get_user(UserName="alice")["User"]["Arn"]}
    assert ours["Condition"] == {
        "DateLessThan": {"aws:CurrentTime": "2026-11-28T10:00:00Z"},
        "StringEquals": {"sts:RoleSessionName": "${aws:username}"},
        "IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]},
        "Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert user_policies(admin, "alice") == []

    trusting.revoke(spec)
    assert trust_policy(admin) == [original]
    assert role_policies(admin) == [revoke_policy_name("alice")]  # live sessions end too
    trusting.revoke(spec)  # gone already: success


def test_a_trust_policy_grant_keeps_the_others_and_prunes_expired_ones(
        trusting: IamAccess, admin: BaseClient, alice: str, role_arn: str,
        clock: Clock) -> None:
    admin.create_user(UserName="bob")
    trusting.grant(role_spec(grant_id=1, expires=clock() - timedelta(minutes=1)))  # ended
    trusting.grant(role_spec(grant_id=2))
    trusting.grant(role_spec(user="bob", grant_id=3))
    assert [s.get("Sid") for s in trust_policy(admin)] == [None, "accessbotgrant2",
                                                          "accessbotgrant3"]
    trusting.revoke(role_spec(grant_id=2))
    assert [s.get("Sid") for s in trust_policy(admin)] == [None, "accessbotgrant3"]


def test_a_trust_policy_grant_of_a_missing_user_or_role_is_permanent(
        trusting: IamAccess, alice: str, role_arn: str) -> None:
    with pytest.raises(ProviderError, match="IAM user carol does not exist") as no_user:
        trusting.grant(role_spec(user="carol"))
    with pytest.raises(ProviderError, match="does not exist") as no_role:
        trusting.grant(role_spec(target="ghost"))
    assert not no_user.value.retryable and not no_role.value.retryable
    trusting.revoke(role_spec(target="ghost"))  # a role that is gone trusts nobody


def test_a_trust_policy_already_as_wanted_is_not_written_again_wherever_the_grant_stands():
    from accessbot.aws.iam import trust_changed, trust_statement

    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    ours = trust_statement(7, "arn:aws:iam::123456789012:user/alice", EXPIRES)
    theirs = trust_statement(8, "arn:aws:iam::123456789012:user/bob", EXPIRES)
    base = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    written = {"Version": "2012-10-17", "Statement": [base, ours, theirs]}
    assert trust_changed(written, 7, ours, now) is None  # another grant came after ours
    assert trust_changed(written, 7, None, now)["Statement"] == [base, theirs]
    ended = trust_statement(9, "arn:aws:iam::123456789012:user/carol", now)
    assert trust_changed({"Statement": [base, ended, ours]}, 7, ours, now)["Statement"] == [
        base, ours]  # an expired statement goes with the next write
