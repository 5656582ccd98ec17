"""In-memory fakes of the credential-hygiene ports: the account, the owners, Slack."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime

from models import CredentialFinding
from services.account_audit import Deviation, PasswordPolicy
from services.findings import Summary
from services.hygiene import AccessKey, CredentialRow, KeySlot
from services.ports import NotificationError, ProviderError, ReportNotReady


def key_slot(slot: int, created: datetime, last_used: datetime | None = None,
             active: bool = True, service: str | None = None,
             region: str | None = None) -> KeySlot:
    return KeySlot(slot=slot, active=active, last_rotated=created, last_used=last_used,
                   last_used_region=region, last_used_service=service)


def row(user: str, created: datetime, *, keys: tuple[KeySlot, ...] = (),
        password: bool = False, password_last_used: datetime | None = None,
        mfa: bool = True) -> CredentialRow:
    return CredentialRow(user=user, arn=f"arn:aws:iam::123456789012:user/{user}",
                         user_created=created, password_enabled=password,
                         password_last_used=password_last_used,
                         password_last_changed=created if password else None,
                         mfa_active=mfa, keys=keys)


@dataclass
class FakeAccount:
    """CredentialSource: a report, live keys per user, and the rest of the account."""

    rows: list[CredentialRow] = field(default_factory=list)
    keys: dict[str, list[AccessKey]] = field(default_factory=dict)
    policy: PasswordPolicy | None = None
    admins: set[str] = field(default_factory=set)
    groups: dict[str, set[str]] = field(default_factory=dict)
    last_used: dict[str, datetime] = field(default_factory=dict)  # key id -> live last use
    not_ready: int = 0            # the next N report() calls raise ReportNotReady
    refuse_deactivate: set[str] = field(default_factory=set)  # users whose keys AWS keeps
    calls: list[tuple] = field(default_factory=list)

    def add_key(self, user: str, key_id: str, created: datetime) -> None:
        self.keys.setdefault(user, []).append(AccessKey(key_id, True, created))

    def report(self) -> list[CredentialRow]:
        self.calls.append(("report",))
        if self.not_ready:
            self.not_ready -= 1
            raise ReportNotReady("the credential report is still being generated")
        return list(self.rows)

    def access_keys(self, iam_user: str) -> list[AccessKey]:
        self.calls.append(("access_keys", iam_user))
        return list(self.keys.get(iam_user, []))

    def key_last_used(self, key_id: str) -> datetime | None:
        self.calls.append(("key_last_used", key_id))
        return self.last_used.get(key_id)

    def deactivate_key(self, iam_user: str, key_id: str) -> None:
        if iam_user in self.refuse_deactivate:
            raise ProviderError("AWS IAM refused deactivating the key (AccessDenied)")
        self.calls.append(("deactivate_key", iam_user, key_id))
        self.keys[iam_user] = [replace(k, active=False) if k.key_id == key_id else k
                               for k in self.keys.get(iam_user, [])]

    def password_policy(self) -> PasswordPolicy | None:
        return self.policy

    def administrators(self) -> set[str]:
        return set(self.admins)

    def group_members(self, group: str) -> set[str]:
        return set(self.groups.get(group, set()))

    def deactivated(self) -> list[str]:
        return [call[2] for call in self.calls if call[0] == "deactivate_key"]


@dataclass
class FakeOwners:
    """IAM user tags and Slack's users by email."""

    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    slack_down: bool = False
    lookups: list[str] = field(default_factory=list)

    def tags_of(self, iam_user: str) -> dict[str, str]:
        return dict(self.tags.get(iam_user, {}))

    def user_for_email(self, email: str) -> str | None:
        self.lookups.append(email)
        if self.slack_down:
            raise NotificationError("Slack unreachable")
        return self.emails.get(email.lower())


@dataclass
class Sent:
    kind: str
    to: str
    ids: list[int]
    ts: str | None = None
    detail: object = None


class FakeHygieneNotifier:
    """HygieneNotifier that records each message (with the finding ids it was about)."""

    def __init__(self):
        self.sent: list[Sent] = []
        self.failing = False
        self._ts = itertools.count(1)

    def of(self, kind: str, to: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.kind == kind and (to is None or s.to == to)]

    def _send(self, kind: str, to: str, rows: list[CredentialFinding], detail=None) -> str:
        if self.failing:
            raise NotificationError("Slack is down")
        ts = f"{next(self._ts)}.000"
        self.sent.append(Sent(kind, to, [r.id for r in rows], ts, detail))
        return ts

    def findings_digest(self, owner: str, rows: list[CredentialFinding]) -> tuple[str, str]:
        channel = owner if owner.startswith("C") else f"D{owner}"
        return channel, self._send("digest", owner, rows,
                                   [(r.kind, r.key_id, r.status) for r in rows])

    def update_findings_digest(self, channel: str, ts: str,
                               rows: list[CredentialFinding]) -> None:
        self._send("update", channel, rows, (ts, [(r.status, r.snoozed_by, r.fixing_by)
                                                  for r in rows]))

    def findings_superseded(self, channel: str, ts: str) -> None:
        self._send("superseded", channel, [], ts)

    def findings_resolved(self, owner: str, rows: list[CredentialFinding]) -> None:
        self._send("resolved", owner, rows)

    def findings_escalated(self, channel: str, rows: list[CredentialFinding]) -> None:
        self._send("escalated", channel, rows)

    def key_final_warning(self, owner: str, row: CredentialFinding, when: datetime) -> None:
        self._send("final_warning", owner, [row], when)

    def findings_summary(self, channel: str, summary: Summary) -> None:
        self._send("summary", channel, [], summary)

    def account_audit(self, channel: str, deviations: list[Deviation]) -> None:
        self._send("audit", channel, [], deviations)
