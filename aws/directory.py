"""Maps Slack users to IAM users through IAM user tags, from an in-memory index."""

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.aws.accounts import as_unreachable
from accessbot.aws.iam import provider_error

SLACK_TAG = "slack-user-id"
EMAIL_TAG = "email"


@dataclass(frozen=True)
class _Snapshot:
    """One consistent view of the account's users; replaced whole, never mutated."""

    by_slack_id: dict[str, str] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def _unique(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key -> user, dropping keys claimed by two users: an ambiguous tag maps nobody."""
    found: dict[str, str] = {}
    ambiguous: set[str] = set()
    for key, user in pairs:
        if key in found and found[key] != user:
            ambiguous.add(key)
        found[key] = user
    return {key: user for key, user in found.items() if key not in ambiguous}


def _build(users: list[dict]) -> _Snapshot:
    slack_pairs: list[tuple[str, str]] = []
    email_pairs: list[tuple[str, str]] = []
    groups: dict[str, frozenset[str]] = {}
    tags_by_user: dict[str, dict[str, str]] = {}
    paths: dict[str, str] = {}
    for user in users:
        name = user["UserName"]
        paths[name] = user.get("Path", "/")
        groups[name] = frozenset(user.get("GroupList", ()))
        tags = {tag["Key"].lower(): tag["Value"].strip() for tag in user.get("Tags", ())}
        tags_by_user[name] = tags
        if tags.get(SLACK_TAG):
            slack_pairs.append((tags[SLACK_TAG], name))
        elif tags.get(EMAIL_TAG):
            # A user tagged with a Slack id belongs to that Slack user only, whatever its email.
            email_pairs.append((tags[EMAIL_TAG].lower(), name))
    return _Snapshot(_unique(slack_pairs), _unique(email_pairs), groups, tags_by_user, paths)


class IamUserIndex:
    """Directory over IAM user tags `slack-user-id`, else `email` (case-insensitive).

    The index is rebuilt by refresh() (call it on a schedule) and, on a lookup miss, at most
    once per min_refresh_interval, so requests do not scan IAM.
    """

    def __init__(
        self,
        client: BaseClient,
        min_refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        grantable_path: str = "/",
        account: str | None = None,
    ):
        self._iam = client
        self._account = account  # another account's id: its role is assumed for each call
        # only users under this IAM path are matched to Slack users (iam_user_path): the
        # bot's policy may then allow its user changes on that path alone
        self._grantable_path = grantable_path
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot = _Snapshot()
        self._refreshed_at: float | None = None
        self.api_calls = 0

    @property
    def size(self) -> int:
        """Number of IAM users in the index."""
        return len(self._snapshot.groups)

    def iam_user_for(self, slack_user_id: str, email: str | None) -> str | None:
        found = self._lookup(slack_user_id, email)
        if found is not None:
            return found
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            found = self._lookup(slack_user_id, email)
            if found is not None or not self._may_refresh():
                return found
            self._refresh_locked()
        return self._lookup(slack_user_id, email)

    def groups_of(self, iam_user: str) -> set[str]:
        """Group names of an IAM user as of the last refresh; empty if unknown."""
        return set(self._snapshot.groups.get(iam_user, ()))

    def tags_of(self, iam_user: str) -> dict[str, str]:
        """The user's tags (keys lowercased) as of the last refresh; empty if unknown."""
        return dict(self._snapshot.tags.get(iam_user, {}))

    def path_of(self, iam_user: str) -> str:
        """The user's IAM path (e.g. /service/) as of the last refresh; "/" if unknown."""
        return self._snapshot.paths.get(iam_user, "/")

    def refresh(self) -> None:
        """Rebuild the index from get_account_authorization_details."""
        with self._lock:
            self._refresh_locked()

    def _lookup(self, slack_user_id: str, email: str | None) -> str | None:
        snapshot = self._snapshot
        found = snapshot.by_slack_id.get(slack_user_id.strip())
        if found is None and email:
            found = snapshot.by_email.get(email.strip().lower())
        if found is not None and not snapshot.paths.get(found, "/").startswith(
                self._grantable_path):
            return None
        return found

    def _may_refresh(self) -> bool:
        return (
            self._refreshed_at is None
            or self._clock() - self._refreshed_at >= self._min_refresh_interval
        )

    def _refresh_locked(self) -> None:
        started = self._clock()
        users: list[dict] = []
        pages = self._iam.get_paginator("get_account_authorization_details")
        try:
            # 1,000 a page, IAM's most: 10 calls for 10,000 users, not the default's 100
            for page in pages.paginate(Filter=["User"], PaginationConfig={"PageSize": 1000}):
                self.api_calls += 1
                users.extend(page.get("UserDetailList", ()))
        except (ClientError, BotoCoreError) as exc:
            # Not stamped as refreshed: the next miss tries again rather than answering "unknown".
            error = provider_error(exc, "listing IAM users and their tags")
            raise (as_unreachable(error, self._account, exc) if self._account else error) from exc
        self._snapshot = _build(users)
        self._refreshed_at = started
