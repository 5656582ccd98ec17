"""IAM Identity Center: permission sets assigned in accounts, and group memberships.

A grant of a permission set is one account assignment per account, for the requester's
Identity Center user: sso-admin CreateAccountAssignment, whose creation status is polled
until it SUCCEEDED or FAILED; a revocation deletes them the same way. A grant of an
Identity Center group is a membership (identitystore CreateGroupMembership). Every call is
idempotent in effect: an assignment or membership that exists already, or is already gone,
is success, so the sweep may repeat any of them after a crash.

Identity Center lives in the organization's management account (or its delegated
administrator): these calls use the bot's own credentials, in `identity_center.region`.
"""

import re
import threading
import time
from collections.abc import Callable, Iterable

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.aws.iam import AWSError, error_code, provider_error
from accessbot.aws.session import make_client
from accessbot.services import catalog
from accessbot.services.catalog import ResourceKind
from accessbot.services.ports import GrantSpec, PartlyDone, ProviderError

GROUP_ID = re.compile(r"^([0-9a-f]{10}-)?[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")
POLL_EVERY = 1.0  # seconds between looks at an assignment's creation or deletion status
POLL_FOR = 120.0  # then the grant is retried (the assignment may still be on its way)
CONFLICT_TRIES = 5  # ConflictException: another operation on the assignment is running
KNOWN_FOR = 600.0  # seconds a found user is remembered
UNKNOWN_FOR = 60.0  # and one not found: a user created in Identity Center is found soon


def _failure(exc: AWSError, doing: str, permanent: Iterable[str] = ()) -> ProviderError:
    return provider_error(exc, doing, "IAM Identity Center", frozenset(permanent))


class IdentityCenter:
    """AccessProvider for sso_permission_set and sso_group, and the Identity Center
    directory (Slack email -> Identity Center user id)."""

    def __init__(self, sso_admin: BaseClient, identity_store: BaseClient,
                 instance_arn: str | None = None, identity_store_id: str | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self._sso = sso_admin
        self._ids = identity_store
        self._instance = (instance_arn, identity_store_id) if instance_arn else None
        self._sleep = sleep
        self._lock = threading.Lock()
        self._permission_sets: dict[str, str] = {}  # name -> ARN
        self._groups: dict[str, str] = {}           # display name -> group id
        self._users: dict[str, tuple[str | None, float]] = {}  # email -> (user id, until)
        self._clock = clock

    # -- the provider ------------------------------------------------------------------

    def grant(self, spec: GrantSpec) -> None:
        self._change(spec, add=True)

    def revoke(self, spec: GrantSpec) -> None:
        self._change(spec, add=False)

    def _change(self, spec: GrantSpec, add: bool) -> None:
        if spec.kind == ResourceKind.SSO_PERMISSION_SET:
            arn = self.permission_set_arn(spec.target)
            self._in_each_account(spec, lambda account: self._assignment(
                "create" if add else "delete", arn, account, spec.iam_user))
        elif spec.kind == ResourceKind.SSO_GROUP:
            change = self._add_member if add else self._remove_member
            change(self.group_id(spec.target), spec.iam_user, spec.target)
        else:
            raise ProviderError(f"Unknown access kind {spec.kind!r}", retryable=False)

    @staticmethod
    def _in_each_account(spec: GrantSpec, change: Callable[[str], None]) -> None:
        """Every account is tried, whatever the others did: one that fails holds up only
        itself. Several accounts, some failed: PartlyDone says which is which."""
        done, failed, retryable = [], {}, False
        for account in spec.accounts:
            try:
                change(account)
            except ProviderError as exc:
                if len(spec.accounts) == 1:
                    raise
                failed[account] = str(exc)
                retryable |= exc.retryable
            else:
                done.append(account)
        if failed:
            # access in place somewhere stays the bot's to take away (a FAILED grant is
            # never revoked): retried, then revoked at its expiry like any pending grant
            raise PartlyDone(tuple(done), failed, retryable or bool(done))

    # -- who is who --------------------------------------------------------------------

    def user_for_email(self, email: str) -> str | None:
        """The Identity Center user whose email (else user name) is this; None if nobody.
        Raises ProviderError when Identity Center does not answer (then nobody is told
        "you have no user": the lookup is retried)."""
        email = email.strip().lower()
        cached = self._users.get(email)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        found = None
        for path in ("emails.value", "userName"):
            found = self._user_by(path, email)
            if found:
                break
        self._users[email] = (found, self._clock() + (KNOWN_FOR if found else UNKNOWN_FOR))
        return found

    def iam_user_for(self, slack_user_id: str, email: str | None) -> str | None:
        """services.ports.Directory: the principal of an Identity Center grant."""
        return self.user_for_email(email) if email else None

    def permission_set_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        with self._lock:
            if name_or_arn not in self._permission_sets:
                self._permission_sets.update(self._list_permission_sets())
            arn = self._permission_sets.get(name_or_arn)
        if arn is None:
            raise ProviderError(f"IAM Identity Center has no permission set called "
                                f"{name_or_arn}", retryable=False)
        return arn

    def group_id(self, name_or_id: str) -> str:
        if GROUP_ID.match(name_or_id):
            return name_or_id
        if name_or_id not in self._groups:
            try:
                found = self._ids.get_group_id(
                    IdentityStoreId=self.instance()[1],
                    AlternateIdentifier={"UniqueAttribute": {
                        "AttributePath": "displayName", "AttributeValue": name_or_id}})
            except (ClientError, BotoCoreError) as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise ProviderError(f"IAM Identity Center has no group called "
                                        f"{name_or_id}", retryable=False) from exc
                raise _failure(exc, f"looking up group {name_or_id}") from exc
            self._groups[name_or_id] = found["GroupId"]
        return self._groups[name_or_id]

    def instance(self) -> tuple[str, str]:
        """(instance ARN, identity store id): configured, else the one ListInstances finds."""
        if self._instance is None:
            try:
                instances = self._sso.list_instances()["Instances"]
            except (ClientError, BotoCoreError) as exc:
                raise _failure(exc, "looking for the Identity Center instance") from exc
            if len(instances) != 1:
                raise ProviderError(f"Found {len(instances)} IAM Identity Center instances; "
                                    "set identity_center.instance_arn and identity_store_id",
                                    retryable=False)
            self._instance = (instances[0]["InstanceArn"], instances[0]["IdentityStoreId"])
        return self._instance

    # -- who holds it (the account audit) ------------------------------------------------

    def assigned(self, permission_set: str, account: str) -> set[str]:
        arn = self.permission_set_arn(permission_set)
        try:
            pages = self._sso.get_paginator("list_account_assignments").paginate(
                InstanceArn=self.instance()[0], AccountId=account, PermissionSetArn=arn)
            return {a["PrincipalId"] for page in pages for a in page["AccountAssignments"]
                    if a["PrincipalType"] == "USER"}
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, f"listing the assignments of {permission_set} in account "
                                f"{account}") from exc

    def members(self, group: str) -> set[str]:
        group_id = self.group_id(group)
        try:
            pages = self._ids.get_paginator("list_group_memberships").paginate(
                IdentityStoreId=self.instance()[1], GroupId=group_id)
            return {m["MemberId"]["UserId"] for page in pages
                    for m in page["GroupMemberships"] if "UserId" in m.get("MemberId", {})}
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, f"listing the members of group {group}") from exc

    def user_name(self, user_id: str) -> str:
        try:
            return self._ids.describe_user(IdentityStoreId=self.instance()[1],
                                           UserId=user_id)["UserName"]
        except (ClientError, BotoCoreError, KeyError):
            return user_id

    # -- taking standing access away (the access review) ----------------------------------

    def remove_assignment(self, permission_set: str, account: str, user_id: str) -> None:
        """Delete the user's assignment of the permission set in the account; gone already
        is success."""
        self._assignment("delete", self.permission_set_arn(permission_set), account, user_id)

    def remove_member(self, group: str, user_id: str) -> None:
        """Take the user out of the group; not a member is success."""
        self._remove_member(self.group_id(group), user_id, group)

    # -- helpers -----------------------------------------------------------------------

    def _assignment(self, action: str, permission_set: str, account: str, user: str) -> None:
        doing = (f"{'assigning' if action == 'create' else 'removing'} permission set "
                 f"{permission_set} {'to' if action == 'create' else 'of'} user {user} in "
                 f"account {account}")
        if action == "create" and user in self.assigned(permission_set, account):
            return  # already: a retry after a crash, or assigned by hand
        call = (self._sso.create_account_assignment if action == "create"
                else self._sso.delete_account_assignment)
        for attempt in range(CONFLICT_TRIES):
            try:
                answer = call(InstanceArn=self.instance()[0], TargetId=account,
                              TargetType="AWS_ACCOUNT", PermissionSetArn=permission_set,
                              PrincipalType="USER", PrincipalId=user)
                break
            except (ClientError, BotoCoreError) as exc:
                code = error_code(exc)
                if action == "delete" and code == "ResourceNotFoundException":
                    return  # gone already
                if code == "ConflictException" and attempt + 1 < CONFLICT_TRIES:
                    self._sleep(2 ** attempt)
                    continue
                raise _failure(exc, doing, permanent={"ValidationException",
                                                      "ResourceNotFoundException"}) from exc
        key = ("AccountAssignmentCreationStatus" if action == "create"
               else "AccountAssignmentDeletionStatus")
        self._wait(action, answer[key], doing)

    def _wait(self, action: str, status: dict, doing: str) -> None:
        if action == "create":
            describe = self._sso.describe_account_assignment_creation_status
            id_key, key = "AccountAssignmentCreationRequestId", "AccountAssignmentCreationStatus"
        else:
            describe = self._sso.describe_account_assignment_deletion_status
            id_key, key = "AccountAssignmentDeletionRequestId", "AccountAssignmentDeletionStatus"
        waited = 0.0
        while status.get("Status") == "IN_PROGRESS":
            if waited >= POLL_FOR:
                raise ProviderError(f"IAM Identity Center is still {doing} after "
                                    f"{POLL_FOR:.0f} s; will look again")
            self._sleep(POLL_EVERY)
            waited += POLL_EVERY
            try:
                status = describe(InstanceArn=self.instance()[0],
                                  **{id_key: status["RequestId"]})[key]
            except (ClientError, BotoCoreError) as exc:
                raise _failure(exc, doing) from exc
        if status.get("Status") == "FAILED":
            raise ProviderError(f"IAM Identity Center failed {doing}: "
                                f"{status.get('FailureReason', 'no reason given')}")

    def _membership(self, group: str, user: str) -> str | None:
        try:
            return self._ids.get_group_membership_id(
                IdentityStoreId=self.instance()[1], GroupId=group,
                MemberId={"UserId": user})["MembershipId"]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise _failure(exc, f"looking up the membership of user {user} in group "
                                f"{group}") from exc

    def _add_member(self, group: str, user: str, name: str) -> None:
        if self._membership(group, user) is not None:
            return  # a member already
        try:
            self._ids.create_group_membership(IdentityStoreId=self.instance()[1],
                                              GroupId=group, MemberId={"UserId": user})
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ConflictException":
                return  # a member already
            raise _failure(exc, f"adding user {user} to group {name}",
                           permanent={"ResourceNotFoundException", "ValidationException"}
                           ) from exc

    def _remove_member(self, group: str, user: str, name: str) -> None:
        membership = self._membership(group, user)
        if membership is None:
            return  # not a member (any more)
        try:
            self._ids.delete_group_membership(IdentityStoreId=self.instance()[1],
                                              MembershipId=membership)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return  # not a member (any more)
            raise _failure(exc, f"removing user {user} from group {name}") from exc

    def _user_by(self, path: str, value: str) -> str | None:
        try:
            return self._ids.get_user_id(
                IdentityStoreId=self.instance()[1],
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": path,
                                                         "AttributeValue": value}})["UserId"]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise _failure(exc, "looking up an Identity Center user") from exc

    def _list_permission_sets(self) -> dict[str, str]:
        instance = self.instance()[0]
        found = {}
        try:
            for page in self._sso.get_paginator("list_permission_sets").paginate(
                    InstanceArn=instance):
                for arn in page["PermissionSets"]:
                    described = self._sso.describe_permission_set(InstanceArn=instance,
                                                                  PermissionSetArn=arn)
                    found[described["PermissionSet"]["Name"]] = arn
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, "listing permission sets") from exc
        return found


def make_identity_center(settings: catalog.IdentityCenter, connections: int) -> IdentityCenter:
    """The adapter on the bot's own credentials, in identity_center.region (else the
    default region)."""
    return IdentityCenter(make_client("sso-admin", settings.region, connections),
                          make_client("identitystore", settings.region, connections),
                          settings.instance_arn, settings.identity_store_id)
