"""The whole hygiene pipeline on moto: the real adapter reads the report and the account,
the runner decides, remembers and tells (the real sender delivers to a fake Slack client)."""

import time
from datetime import UTC, datetime

import pytest
from botocore.client import BaseClient

from accessbot.aws.credentials import IamCredentials
from accessbot.aws.directory import IamUserIndex
from accessbot.services.catalog import parse_catalog
from accessbot.services.hygiene_runner import HygieneRunner
from tests.conftest import CATALOG
from tests.factories import active_grant
from tests.fakes.hygiene import HygieneMail


class Owners:
    """The real directory for tags; Slack emails from a dict."""

    def __init__(self, index: IamUserIndex, emails: dict[str, str]):
        self.index, self.emails = index, emails

    def tags_of(self, iam_user: str) -> dict[str, str]:
        return self.index.tags_of(iam_user)

    def path_of(self, iam_user: str) -> str:
        return self.index.path_of(iam_user)

    def user_for_email(self, email: str) -> str | None:
        return self.emails.get(email.lower())


@pytest.fixture
def pipeline(iam: BaseClient, sessions):
    catalog = parse_catalog({**CATALOG, "hygiene": {"access_key_max_age": "1s",
                                                    "unused_credential_age": "1s"}})
    index = IamUserIndex(iam)
    credentials = IamCredentials(iam, poll_interval=0.01)
    notifier = HygieneMail(sessions, catalog)
    runner = HygieneRunner(sessions, catalog, credentials,
                           Owners(index, {"carol@example.com": "U0CAROL"}),
                           refresh_owners=index.refresh)
    return runner, credentials, notifier


def wait_past(created: datetime, seconds: float = 2.0) -> None:
    time.sleep(max(0.0, seconds - (datetime.now(UTC) - created).total_seconds()) + 0.05)


def test_stale_keys_found_matched_told_and_deactivated(pipeline, admin: BaseClient):
    runner, credentials, notifier = pipeline
    admin.create_user(UserName="alice", Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    admin.create_user(UserName="carol-ci", Tags=[{"Key": "email", "Value": "carol@example.com"}])
    admin.create_user(UserName="build", Tags=[{"Key": "owner", "Value": "C0PLATFORM"}])
    keys = {user: admin.create_access_key(UserName=user)["AccessKey"]
            for user in ("alice", "carol-ci", "build")}
    wait_past(max(k["CreateDate"] for k in keys.values()))

    result = runner.stale_credentials()

    assert result["new"] == 6  # each key: older than 1s, and never used
    assert {s.to for s in notifier.of("digest")} == {"U0ALICE", "U0CAROL", "C0PLATFORM"}
    [alice] = notifier.of("digest", "U0ALICE")
    assert {key_id for _, key_id, _ in alice.detail} == {keys["alice"]["AccessKeyId"]}
    # one report for everyone (generate, generate again once it is ready, get), then the
    # keys of each user with key findings, once per user
    assert result["aws_calls"] == 3 + 3

    answer = runner.deactivate(alice.ids[0], "U0ALICE", "DU0ALICE")
    assert "Inactive" in answer
    [meta] = admin.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert meta["Status"] == "Inactive"
    # the next report no longer has an active key for alice: nothing left for her
    notifier.sent.clear()
    runner.stale_credentials()
    assert notifier.of("digest", "U0ALICE") == []


def test_account_audit_on_moto(pipeline, admin: BaseClient, sessions, monkeypatch):
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    runner, _, notifier = pipeline
    admin.update_account_password_policy(MinimumPasswordLength=10, PasswordReusePrevention=24,
                                         RequireSymbols=True, RequireNumbers=True,
                                         RequireUppercaseCharacters=True,
                                         RequireLowercaseCharacters=True,
                                         AllowUsersToChangePassword=True)
    admin.create_user(UserName="root-ish")
    admin.attach_user_policy(UserName="root-ish",
                             PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    admin.create_group(GroupName="prod-admins")
    for user in ("alice", "mallory"):
        admin.create_user(UserName=user)
        admin.add_user_to_group(GroupName="prod-admins", UserName=user)
    active_grant(sessions, runner.catalog, runner.clock(), iam_user="alice")

    deviations = runner.account_audit()["deviations"]

    assert deviations == [
        "minimum password length: 10, baseline at least 14",
        "1 IAM user(s) hold administrator access (root-ish); at least 2 should, so that one "
        "locked-out admin is not fatal",
        "mallory is in prod-admins without an active accessbot grant",
    ]
    assert [s.to for s in notifier.of("audit")] == ["C0SECURITY"]
