"""IamCredentials against moto, the report parser against real-format fixtures, and the report
polling against a fake client that answers the way IAM does."""

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, EndpointConnectionError

from accessbot.aws.credentials import (
    IamCredentials,
    grants_admin,
    parse_credential_report,
    policy_document,
)
from accessbot.services.hygiene import ROOT_USER, CredentialRow, KeySlot, match_key
from accessbot.services.ports import PasswordPolicy, ProviderError, ReportNotReady

REPORTS = Path(__file__).parent.parent / "fixtures" / "credential_reports"
AWS_ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
AWS_READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def unused_slot(slot: int, last_rotated: datetime | None = None) -> KeySlot:
    return KeySlot(slot, False, last_rotated, None, None, None)


def by_user(rows: list[CredentialRow]) -> dict[str, CredentialRow]:
    return {row.user: row for row in rows}


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str] = "*") -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.fixture
def credentials(iam: BaseClient) -> IamCredentials:
    return IamCredentials(iam, sleep=lambda seconds: None)


# Parsing the report


@pytest.fixture
def account() -> dict[str, CredentialRow]:
    rows = parse_credential_report((REPORTS / "account.csv").read_bytes())
    assert [row.user for row in rows] == [ROOT_USER, "alice", "bob", "carol", "svc-deploy"]
    return by_user(rows)


def test_root_row(account: dict[str, CredentialRow]) -> None:
    root = account[ROOT_USER]
    assert root.is_root
    assert root == CredentialRow(
        user=ROOT_USER,
        arn="arn:aws:iam::123456789012:root",
        user_created=at(2019, 3, 1, 8, 0, 0),
        password_enabled=False,  # "not_supported" for root
        password_last_used=at(2026, 1, 4, 22, 10, 5),
        password_last_changed=None,
        mfa_active=False,
        keys=(
            KeySlot(1, True, at(2019, 3, 2, 9, 15), at(2025, 12, 30, 11, 0), "us-east-1", "iam"),
            unused_slot(2),
        ),
    )


def test_console_user_with_mfa_and_a_used_key(account: dict[str, CredentialRow]) -> None:
    alice = account["alice"]
    assert not alice.is_root
    assert alice.arn == "arn:aws:iam::123456789012:user/alice"
    assert alice.user_created == at(2024, 2, 10, 12, 0, 0)
    assert alice.password_enabled is True
    assert alice.password_last_used == at(2026, 1, 5, 10, 20, 30)
    assert alice.password_last_changed == at(2025, 11, 1, 7, 45, 12)
    assert alice.mfa_active is True
    assert alice.keys == (
        KeySlot(1, True, at(2025, 10, 1, 8, 0), at(2026, 1, 5, 9, 59, 58), "eu-west-1", "s3"),
        unused_slot(2),
    )
    assert alice.password_last_used.tzinfo is UTC


def test_password_never_used_and_key_never_used_are_none(
    account: dict[str, CredentialRow],
) -> None:
    bob = account["bob"]
    assert bob.password_enabled is True
    assert bob.password_last_used is None  # "no_information"
    assert bob.mfa_active is False
    assert bob.keys[0] == KeySlot(1, True, at(2025, 6, 15, 16, 31, 2), None, None, None)


def test_two_active_keys_keep_their_slots(account: dict[str, CredentialRow]) -> None:
    carol = account["carol"]
    assert carol.arn == "arn:aws:iam::123456789012:user/engineering/carol"
    assert carol.keys == (
        KeySlot(1, True, at(2025, 3, 3, 3, 3, 3), at(2026, 1, 4, 18, 22), "us-west-2", "ec2"),
        KeySlot(2, True, at(2025, 12, 20, 10), at(2026, 1, 5, 8), "eu-central-1", "dynamodb"),
    )


def test_service_user_without_password(account: dict[str, CredentialRow]) -> None:
    service = account["svc-deploy"]
    assert service.password_enabled is False
    assert service.password_last_used is None
    assert service.password_last_changed is None
    assert service.keys == (
        KeySlot(1, True, at(2022, 1, 20, 14, 5), at(2026, 1, 5, 6), "us-east-1", "sts"),
        KeySlot(2, False, at(2021, 12, 1), at(2022, 1, 19, 23, 59, 59), "us-east-1", "sts"),
    )


def test_columns_are_found_by_name() -> None:
    [dave] = parse_credential_report((REPORTS / "reordered.csv").read_bytes())
    assert dave == CredentialRow(
        user="dave",
        arn="arn:aws:iam::123456789012:user/dave",
        user_created=at(2025, 1, 1),
        password_enabled=True,
        password_last_used=at(2026, 1, 3, 10, 30),  # given as 12:30+02:00
        password_last_changed=at(2025, 12, 1, 11),
        mfa_active=True,
        keys=(
            KeySlot(1, False, at(2024, 5, 5, 5, 5, 5), at(2024, 6, 1), "ap-southeast-2", "lambda"),
            KeySlot(2, True, at(2025, 12, 24, 18), None, None, None),
        ),
    )
    assert dave.password_last_used.tzinfo is UTC


def test_a_report_without_a_needed_column_is_refused() -> None:
    data = (REPORTS / "account.csv").read_bytes().replace(b",mfa_active,", b",mfa,", 1)
    with pytest.raises(ValueError, match="no column 'mfa_active'"):
        parse_credential_report(data)


def test_a_truncated_row_is_refused() -> None:
    data = (REPORTS / "account.csv").read_bytes() + b"eve,arn:aws:iam::123456789012:user/eve\n"
    with pytest.raises(ValueError, match="line 7 has 2 cells"):
        parse_credential_report(data)


# report() against moto


def test_report_has_moto_users_and_their_keys(
    credentials: IamCredentials, admin: BaseClient
) -> None:
    admin.create_user(UserName="alice")
    admin.create_login_profile(UserName="alice", Password="Correct-horse-9")
    admin.create_user(UserName="bob")
    first = admin.create_access_key(UserName="bob")["AccessKey"]
    second = admin.create_access_key(UserName="bob")["AccessKey"]

    rows = by_user(credentials.report())

    assert set(rows) == {"alice", "bob"}
    assert rows["alice"].password_enabled is True
    assert rows["alice"].keys == (unused_slot(1), unused_slot(2))
    bob = rows["bob"]
    assert bob.password_enabled is False
    assert [(slot.slot, slot.active, slot.last_used) for slot in bob.keys] == [
        (1, True, None),
        (2, True, None),
    ]
    # The report's last_rotated is the key's CreateDate: that is how findings find keys.
    keys = credentials.access_keys("bob")
    assert {key.key_id for key in keys} == {first["AccessKeyId"], second["AccessKeyId"]}
    assert all(match_key(slot.last_rotated, keys) is not None for slot in bob.keys)
    assert credentials.api_calls == 3 + 1  # generate (STARTED), generate, get; list keys


# report() while IAM is busy


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} says IAM"}}, operation)


ONE_USER = (REPORTS / "reordered.csv").read_bytes()


class FakeReportIam:
    """Answers GenerateCredentialReport and GetCredentialReport from scripts, then repeats
    the last answer. An answer is a State / CSV bytes, or an exception to raise."""

    def __init__(self, generate: list[object], get: list[object]):
        self._generate = generate
        self._get = get
        self.calls: list[str] = []

    @staticmethod
    def _next(script: list[object]) -> object:
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def generate_credential_report(self) -> dict:
        self.calls.append("generate")
        return {"State": self._next(self._generate)}

    def get_credential_report(self) -> dict:
        self.calls.append("get")
        return {"Content": self._next(self._get), "ReportFormat": "text/csv"}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def source(fake: FakeReportIam, sleeps: Sleeps, **kwargs: float) -> IamCredentials:
    return IamCredentials(fake, poll_interval=2.0, max_wait=6.0, sleep=sleeps, **kwargs)


def test_report_polls_until_complete() -> None:
    fake = FakeReportIam(["STARTED", "INPROGRESS", "COMPLETE"], [ONE_USER])
    sleeps = Sleeps()
    credentials = source(fake, sleeps)
    assert [row.user for row in credentials.report()] == ["dave"]
    assert fake.calls == ["generate", "generate", "generate", "get"]
    assert sleeps == [2.0, 2.0]
    assert credentials.api_calls == 4


def test_report_gives_up_after_max_wait() -> None:
    fake = FakeReportIam(["INPROGRESS"], [ONE_USER])
    sleeps = Sleeps()
    with pytest.raises(ReportNotReady, match="not ready after 6 s") as caught:
        source(fake, sleeps).report()
    assert caught.value.retryable is True
    assert sleeps == [2.0, 2.0, 2.0]
    assert fake.calls == ["generate"] * 4


def test_report_in_progress_when_fetched_is_polled_again() -> None:
    in_progress = client_error("ReportInProgress", "GetCredentialReport")
    fake = FakeReportIam(["COMPLETE"], [in_progress, ONE_USER])
    sleeps = Sleeps()
    assert [row.user for row in source(fake, sleeps).report()] == ["dave"]
    assert fake.calls == ["generate", "get", "generate", "get"]
    assert sleeps == [2.0]


@pytest.mark.parametrize("code", ["ReportExpired", "ReportNotPresent"])
def test_an_expired_or_missing_report_is_generated_again(code: str) -> None:
    fake = FakeReportIam(
        ["COMPLETE", "STARTED", "COMPLETE"], [client_error(code, "GetCredentialReport"), ONE_USER]
    )
    assert [row.user for row in source(fake, Sleeps()).report()] == ["dave"]
    assert fake.calls == ["generate", "get", "generate", "generate", "get"]


@pytest.mark.parametrize(
    "code", ["Throttling", "ThrottlingException", "LimitExceeded", "RequestLimitExceeded"]
)
def test_throttled_generation_is_not_ready_never_empty(code: str) -> None:
    fake = FakeReportIam([client_error(code, "GenerateCredentialReport")], [ONE_USER])
    with pytest.raises(ReportNotReady, match="throttled") as caught:
        source(fake, Sleeps()).report()
    assert caught.value.retryable is True
    assert fake.calls == ["generate"]


def test_throttled_fetch_is_not_ready() -> None:
    fake = FakeReportIam(
        ["COMPLETE"], [client_error("ThrottlingException", "GetCredentialReport")]
    )
    with pytest.raises(ReportNotReady, match="throttled fetching"):
        source(fake, Sleeps()).report()


def test_other_failures_are_provider_errors() -> None:
    denied = FakeReportIam([client_error("AccessDenied", "GenerateCredentialReport")], [b""])
    with pytest.raises(ProviderError, match="AccessDenied") as caught:
        source(denied, Sleeps()).report()
    assert type(caught.value) is ProviderError
    assert caught.value.retryable is True

    unreachable = FakeReportIam(["COMPLETE"], [EndpointConnectionError(endpoint_url="x")])
    with pytest.raises(ProviderError, match="Could not reach AWS IAM") as caught:
        source(unreachable, Sleeps()).report()
    assert type(caught.value) is ProviderError


def test_an_unreadable_report_is_a_permanent_error() -> None:
    fake = FakeReportIam(["COMPLETE"], [b"user,arn\nalice,arn:aws:iam::1:user/alice\n"])
    with pytest.raises(ProviderError, match="could not be read") as caught:
        source(fake, Sleeps()).report()
    assert caught.value.retryable is False


# Access keys


def statuses(admin: BaseClient, user: str) -> dict[str, str]:
    keys = admin.list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {key["AccessKeyId"]: key["Status"] for key in keys}


@pytest.fixture
def two_keys(admin: BaseClient) -> tuple[str, str]:
    admin.create_user(UserName="bob")
    first = admin.create_access_key(UserName="bob")["AccessKey"]["AccessKeyId"]
    second = admin.create_access_key(UserName="bob")["AccessKey"]["AccessKeyId"]
    admin.update_access_key(UserName="bob", AccessKeyId=second, Status="Inactive")
    return first, second


def test_access_keys_are_read_live(
    credentials: IamCredentials, admin: BaseClient, two_keys: tuple[str, str]
) -> None:
    keys = {key.key_id: key for key in credentials.access_keys("bob")}
    assert {key_id: key.active for key_id, key in keys.items()} == {
        two_keys[0]: True,
        two_keys[1]: False,
    }
    created = admin.list_access_keys(UserName="bob")["AccessKeyMetadata"][0]["CreateDate"]
    assert keys[two_keys[0]].created == created
    assert keys[two_keys[0]].created.tzinfo is UTC


def test_key_last_used_is_read_live(
    credentials: IamCredentials, two_keys: tuple[str, str]
) -> None:
    # moto records no use of the keys it creates: "never used"
    assert credentials.key_last_used(two_keys[0]) is None
    with pytest.raises(ProviderError):
        credentials.key_last_used("AKIADOESNOTEXIST0000")


def test_access_keys_of_missing_user_is_empty(credentials: IamCredentials) -> None:
    assert credentials.access_keys("ghost") == []


def test_deactivate_key_is_idempotent(
    credentials: IamCredentials, admin: BaseClient, two_keys: tuple[str, str]
) -> None:
    first, second = two_keys
    credentials.deactivate_key("bob", first)
    credentials.deactivate_key("bob", first)
    credentials.deactivate_key("bob", second)  # already inactive
    assert statuses(admin, "bob") == {first: "Inactive", second: "Inactive"}


def test_deactivate_key_leaves_other_keys_alone(
    credentials: IamCredentials, admin: BaseClient, two_keys: tuple[str, str]
) -> None:
    admin.update_access_key(UserName="bob", AccessKeyId=two_keys[1], Status="Active")
    credentials.deactivate_key("bob", two_keys[1])
    assert statuses(admin, "bob") == {two_keys[0]: "Active", two_keys[1]: "Inactive"}


def test_deactivating_a_deleted_key_is_success(
    credentials: IamCredentials, admin: BaseClient, two_keys: tuple[str, str]
) -> None:
    admin.delete_access_key(UserName="bob", AccessKeyId=two_keys[0])
    credentials.deactivate_key("bob", two_keys[0])
    credentials.deactivate_key("ghost", two_keys[0])
    assert statuses(admin, "bob") == {two_keys[1]: "Inactive"}


# Password policy


def test_no_password_policy(credentials: IamCredentials) -> None:
    assert credentials.password_policy() is None


def test_password_policy_values(credentials: IamCredentials, admin: BaseClient) -> None:
    admin.update_account_password_policy(
        MinimumPasswordLength=14,
        PasswordReusePrevention=24,
        RequireSymbols=True,
        RequireNumbers=True,
        RequireUppercaseCharacters=True,
        RequireLowercaseCharacters=False,
        AllowUsersToChangePassword=True,
        MaxPasswordAge=90,
    )
    assert credentials.password_policy() == PasswordPolicy(
        minimum_length=14,
        reuse_prevention=24,
        require_symbols=True,
        require_numbers=True,
        require_uppercase=True,
        require_lowercase=False,
        allow_users_to_change=True,
        max_age_days=90,
    )


def test_password_policy_unset_values_are_none(
    credentials: IamCredentials, admin: BaseClient
) -> None:
    admin.update_account_password_policy(MinimumPasswordLength=8)
    assert credentials.password_policy() == PasswordPolicy(minimum_length=8)


# Administrators


@pytest.mark.parametrize(
    "document, admin",
    [
        (policy(allow("*")), True),
        (policy(allow(["s3:GetObject", "*:*"], ["arn:aws:s3:::x", "*"])), True),
        ({"Statement": allow("*")}, True),  # a single statement, not a list
        (policy(allow("*", "arn:aws:s3:::bucket/*")), False),
        (policy(allow("s3:*")), False),
        (policy({"Effect": "Deny", "Action": "*", "Resource": "*"}), False),
        (policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), False),
        (quote(policy(allow("*")), safe=""), True),  # as IAM sends it, URL-encoded
    ],
)
def test_grants_admin(document: str | dict, admin: bool) -> None:
    assert grants_admin(document) is admin


def test_plain_json_documents_are_not_url_decoded() -> None:
    text = policy(allow("s3:GetObject", "arn:aws:s3:::odd%41name/*"))
    assert policy_document(text)["Statement"][0]["Resource"] == "arn:aws:s3:::odd%41name/*"


@pytest.fixture
def aws_managed_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto loads AWS managed policies (AdministratorAccess...) only when asked to."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")


def make_users(admin: BaseClient, *names: str) -> None:
    for name in names:
        admin.create_user(UserName=name)


def test_administrators(
    aws_managed_policies: None, credentials: IamCredentials, admin: BaseClient
) -> None:
    make_users(admin, "direct", "via-group", "inline", "read-only", "customer", "plain")
    make_users(admin, "group-inline", "old-version")
    admin.attach_user_policy(UserName="direct", PolicyArn=AWS_ADMIN)

    admin.create_group(GroupName="admins")
    admin.attach_group_policy(GroupName="admins", PolicyArn=AWS_ADMIN)
    admin.add_user_to_group(GroupName="admins", UserName="via-group")

    admin.put_user_policy(UserName="inline", PolicyName="all", PolicyDocument=policy(allow("*")))
    admin.put_user_policy(UserName="plain", PolicyName="s3", PolicyDocument=policy(allow("s3:*")))
    admin.attach_user_policy(UserName="read-only", PolicyArn=AWS_READ_ONLY)

    everything = policy(allow(["*:*"], ["*"]))
    customer = admin.create_policy(PolicyName="everything", PolicyDocument=everything)
    admin.attach_user_policy(UserName="customer", PolicyArn=customer["Policy"]["Arn"])

    admin.create_group(GroupName="ops")
    admin.put_group_policy(GroupName="ops", PolicyName="all", PolicyDocument=policy(allow("*")))
    admin.add_user_to_group(GroupName="ops", UserName="group-inline")

    # Only the default version counts: v1 allowed everything, v2 is read-only.
    narrowed = admin.create_policy(PolicyName="narrowed", PolicyDocument=everything)["Policy"]
    admin.create_policy_version(
        PolicyArn=narrowed["Arn"], PolicyDocument=policy(allow("s3:Get*")), SetAsDefault=True
    )
    admin.attach_user_policy(UserName="old-version", PolicyArn=narrowed["Arn"])

    assert credentials.administrators() == {
        "direct",
        "via-group",
        "inline",
        "customer",
        "group-inline",
    }


@pytest.mark.parametrize("users", [3, 40])
def test_administrators_costs_the_same_calls_for_any_number_of_users(
    credentials: IamCredentials, admin: BaseClient, users: int
) -> None:
    make_users(admin, *(f"user-{n}" for n in range(users)))
    admin.put_user_policy(UserName="user-1", PolicyName="all", PolicyDocument=policy(allow("*")))
    assert credentials.administrators() == {"user-1"}
    assert credentials.api_calls == 1


# Group members


def test_group_members(credentials: IamCredentials, admin: BaseClient) -> None:
    make_users(admin, "alice", "bob", "carol")
    admin.create_group(GroupName="admins")
    admin.add_user_to_group(GroupName="admins", UserName="alice")
    admin.add_user_to_group(GroupName="admins", UserName="bob")
    assert credentials.group_members("admins") == {"alice", "bob"}


def test_members_of_missing_group_is_empty(credentials: IamCredentials) -> None:
    assert credentials.group_members("no-such-group") == set()
