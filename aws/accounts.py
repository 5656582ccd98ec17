"""The configured AWS accounts: a boto3 session for each, on the role the bot assumes there.

Credentials are assumed on first use and refreshed by botocore before they expire (its
refreshable credentials renew 15 minutes ahead), so a session lives as long as the bot.
An account whose role cannot be assumed fails only the calls made in it: each is a
retryable ProviderError, and the grant or revocation is retried like any other.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import boto3
from botocore.client import BaseClient
from botocore.credentials import DeferredRefreshableCredentials

from accessbot.aws.credentials import IamCredentials
from accessbot.aws.iam import IamAccess
from accessbot.aws.session import botocore_session, default_region, make_client
from accessbot.services.account_audit import PasswordPolicy
from accessbot.services.catalog import Account
from accessbot.services.hygiene import AccessKey, CredentialRow
from accessbot.services.ports import AccountUnreachable, GrantSpec, ProviderError
from accessbot.services.role_hygiene import RoleFacts

T = TypeVar("T")

SESSION_NAME = "accessbot"
SESSION_SECONDS = 3600


def assumed_session(account: Account, sts: BaseClient | None = None) -> boto3.Session:
    """A session on account.role_arn (with its external_id), assumed when first used."""
    sts = sts or make_client("sts", connections=4)

    def assume() -> dict:
        kwargs = {"RoleArn": account.role_arn, "RoleSessionName": SESSION_NAME,
                  "DurationSeconds": SESSION_SECONDS}
        if account.external_id:
            kwargs["ExternalId"] = account.external_id
        found = sts.assume_role(**kwargs)["Credentials"]
        return {"access_key": found["AccessKeyId"], "secret_key": found["SecretAccessKey"],
                "token": found["SessionToken"], "expiry_time": found["Expiration"].isoformat()}

    session = botocore_session()
    # botocore has no public setter for refreshable credentials: the usual way in
    session._credentials = DeferredRefreshableCredentials(
        refresh_using=assume, method="sts-assume-role")
    return boto3.Session(botocore_session=session, region_name=default_region())


def as_unreachable(exc: ProviderError, account: str,
                   cause: BaseException | None = None) -> ProviderError:
    """exc, or AccountUnreachable when what failed (`cause`, by default exc's) was
    assuming the account's role."""
    cause = cause or exc.__cause__
    if getattr(cause, "operation_name", None) != "AssumeRole":
        return exc
    unreachable = AccountUnreachable(f"cannot assume the role of account {account}: {cause}",
                                     account)
    unreachable.__cause__ = cause
    return unreachable


class IamByAccount:
    """AccessProvider for the IAM kinds: the bot's own account, or the grant's account
    through the role assumed there."""

    def __init__(self, own: IamAccess, others: dict[str, IamAccess]):
        self._own = own
        self._others = others  # account id -> its adapter

    def grant(self, spec: GrantSpec) -> str | None:
        return self._in_account(spec, self._access(spec).grant)

    def revoke(self, spec: GrantSpec) -> None:
        self._in_account(spec, self._access(spec).revoke)

    @staticmethod
    def _in_account(spec: GrantSpec, call):
        """The call; a failure to assume the account's role is said as such."""
        try:
            return call(spec)
        except ProviderError as exc:
            if spec.accounts:
                raise as_unreachable(exc, spec.accounts[0]) from exc.__cause__
            raise

    def _access(self, spec: GrantSpec) -> IamAccess:
        if not spec.accounts:
            return self._own
        [account] = spec.accounts
        if account not in self._others:
            raise ProviderError(f"Account {account} is not configured (accounts: with a "
                                "role_arn)", retryable=False)
        return self._others[account]


class AccountCredentials:
    """CredentialSource of another account (hygiene and the account audit there): a
    failure to assume its role is said as such, so that the admins hear once."""

    def __init__(self, source: IamCredentials, account: str):
        self._source = source
        self._account = account

    @property
    def api_calls(self) -> int:
        return self._source.api_calls

    def _call(self, method: Callable[..., T], *args) -> T:
        try:
            return method(*args)
        except ProviderError as exc:
            raise as_unreachable(exc, self._account) from exc.__cause__

    def report(self) -> list[CredentialRow]:
        return self._call(self._source.report)

    def access_keys(self, iam_user: str) -> list[AccessKey]:
        return self._call(self._source.access_keys, iam_user)

    def key_last_used(self, key_id: str) -> datetime | None:
        return self._call(self._source.key_last_used, key_id)

    def deactivate_key(self, iam_user: str, key_id: str) -> None:
        self._call(self._source.deactivate_key, iam_user, key_id)

    def password_policy(self) -> PasswordPolicy | None:
        return self._call(self._source.password_policy)

    def administrators(self) -> set[str]:
        return self._call(self._source.administrators)

    def group_members(self, group: str) -> set[str]:
        return self._call(self._source.group_members, group)

    def roles(self) -> list[RoleFacts]:
        return self._call(self._source.roles)

    def max_session(self, role: str) -> int | None:
        return self._call(self._source.max_session, role)

    def cap_session(self, role: str, seconds: int) -> bool:
        return self._call(self._source.cap_session, role, seconds)
