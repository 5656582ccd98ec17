"""In-memory fakes of the interfaces in services/ports.py, for service and runner tests.

Each fake records what it was asked to do, so a test asserts on calls and on state
instead of patching module paths.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from accessbot.services.ports import GrantSpec, LookupFailed, ProviderError

FAKE_ACCOUNT = "123456789012"


@dataclass
class _Failures:
    """Failures queued with fail_next(), consumed one per matching call."""

    queue: list[tuple[str | None, object]] = field(default_factory=list)

    def add(self, times: int, key: str | None, error: object) -> None:
        self.queue.extend((key, error) for _ in range(times))

    def take(self, key: str) -> object | None:
        for index, (wanted, error) in enumerate(self.queue):
            if wanted is None or wanted == key:
                del self.queue[index]
                return error
        return None


class FakeProvider:
    """AccessProvider: keeps the set of (iam_user, kind, target) currently granted."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls: list[tuple[str, GrantSpec]] = []
        self.granted: set[tuple[str, str, str]] = set()
        self._failures = _Failures()
        self._lock = threading.Lock()

    def fail_next(self, times: int = 1, retryable: bool = True,
                  message: str = "AWS is having a bad day", only: str | None = None,
                  error: ProviderError | None = None) -> None:
        """Make the next `times` calls (of `only`: 'grant' or 'revoke', if given) fail, with
        `error` if given."""
        self._failures.add(times, only, error or ProviderError(message, retryable=retryable))

    @property
    def grants(self) -> list[GrantSpec]:
        return [spec for op, spec in self.calls if op == "grant"]

    @property
    def revokes(self) -> list[GrantSpec]:
        return [spec for op, spec in self.calls if op == "revoke"]

    def grant(self, spec: GrantSpec) -> str | None:
        self._call("grant", spec)
        with self._lock:
            self.granted.add((spec.iam_user, spec.kind, spec.target))
        if spec.kind == "iam_role":
            return role_arn(spec.target)
        return None

    def revoke(self, spec: GrantSpec) -> None:
        self._call("revoke", spec)
        with self._lock:
            self.granted.discard((spec.iam_user, spec.kind, spec.target))

    def _call(self, op: str, spec: GrantSpec) -> None:
        with self._lock:
            self.calls.append((op, spec))
            error = self._failures.take(op)
        if self.delay:
            time.sleep(self.delay)
        if error is not None:
            raise error


def role_arn(target: str) -> str:
    return target if target.startswith("arn:") else f"arn:aws:iam::{FAKE_ACCOUNT}:role/{target}"


class FakeDirectory:
    """Directory: Slack user id -> IAM user, and email -> IAM user."""

    def __init__(self, by_slack_id: dict[str, str] | None = None,
                 by_email: dict[str, str] | None = None):
        self.by_slack_id = dict(by_slack_id or {})
        self.by_email = dict(by_email or {})
        self.lookups: list[tuple[str, str | None]] = []
        self.error: Exception | None = None  # raised by every lookup while set

    def iam_user_for(self, slack_user_id: str, email: str | None) -> str | None:
        self.lookups.append((slack_user_id, email))
        if self.error is not None:
            raise self.error
        found = self.by_slack_id.get(slack_user_id)
        if found is None and email is not None:
            found = self.by_email.get(email)
        return found


class FakeProfiles:
    """Profiles: Slack user id -> email; `failing=True` makes every lookup raise."""

    def __init__(self, emails: dict[str, str] | None = None, failing: bool = False):
        self.emails = dict(emails or {})
        self.failing = failing
        self.lookups: list[str] = []

    def email_of(self, slack_user_id: str) -> str | None:
        self.lookups.append(slack_user_id)
        if self.failing:
            raise LookupFailed("users.info failed (fake)")
        return self.emails.get(slack_user_id)


class FakeTimers:
    """Timers: records schedule and cancel calls and what is currently scheduled."""

    def __init__(self):
        self.calls: list[tuple[str, str, int, datetime | None]] = []
        self.scheduled: dict[tuple[str, int], datetime] = {}

    def schedule(self, job: str, grant_id: int, when: datetime) -> None:
        self.calls.append(("schedule", job, grant_id, when))
        self.scheduled[(job, grant_id)] = when

    def cancel(self, job: str, grant_id: int) -> None:
        self.calls.append(("cancel", job, grant_id, None))
        self.scheduled.pop((job, grant_id), None)


class FakeUserGroups:
    """services.people.UserGroups: group id -> members; `failing` groups raise LookupFailed
    (never read, and Slack not answering)."""

    def __init__(self, groups: dict[str, set[str]] | None = None,
                 failing: set[str] | None = None):
        self.groups = {g: frozenset(m) for g, m in (groups or {}).items()}
        self.failing = set(failing or ())

    def members(self, group_id: str) -> frozenset[str]:
        if group_id in self.failing:
            raise LookupFailed(f"user group {group_id}: no answer")
        return self.groups.get(group_id, frozenset())
