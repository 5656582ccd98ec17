"""In-memory fakes of the credential-hygiene ports: the account, the owners, Slack."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from accessbot.handlers.delivery import Delivery
from accessbot.services import findings
from accessbot.services.account_audit import Deviation, PasswordPolicy
from accessbot.services.clock import utcnow
from accessbot.services.hygiene import AccessKey, CredentialRow, KeySlot
from accessbot.services.outbox import Kind
from accessbot.services.ports import LookupFailed, ProviderError, ReportNotReady
from tests.fakes.outbox import Mailroom


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
    paths: dict[str, str] = field(default_factory=dict)

    def tags_of(self, iam_user: str) -> dict[str, str]:
        return dict(self.tags.get(iam_user, {}))

    def path_of(self, iam_user: str) -> str:
        return self.paths.get(iam_user, "/")

    def user_for_email(self, email: str) -> str | None:
        self.lookups.append(email)
        if self.slack_down:
            raise LookupFailed("Slack unreachable")
        return self.emails.get(email.lower())


@dataclass
class Sent:
    kind: str
    to: str
    ids: list[int]
    ts: str | None = None
    detail: object = None


class HygieneMail:
    """What the hygiene jobs owe, delivered by the real sender and recorded as Sent (with
    the finding ids each message was about, as rendered when it went out)."""

    def __init__(self, sessions, catalog, clock=utcnow):
        self.sent: list[Sent] = []
        self._mailroom = Mailroom(sessions, catalog, clock)
        self._mailroom.sender.delivery = _Recording(self._mailroom.client, catalog, self.sent)
        self.client = self._mailroom.client

    @property
    def failing(self) -> bool:
        return self.client.down

    @failing.setter
    def failing(self, down: bool) -> None:
        self.client.down = down

    def deliver(self) -> int:
        return self._mailroom.deliver()

    def of(self, kind: str, to: str | None = None) -> list[Sent]:
        self.deliver()
        return [s for s in self.sent if s.kind == kind and (to is None or s.to == to)]


class _Recording(Delivery):
    """The real delivery, remembering what each call it sends was about."""

    def __init__(self, client, catalog, sent: list[Sent]):
        super().__init__(client, catalog)
        self._sent = sent
        self._about: dict[int, Sent] = {}

    def render(self, session, owed, now):
        call = super().render(session, owed, now)
        if call is not None:
            self._about[id(call)] = _describe(session, owed, call)
        return call

    def send(self, call):
        answer = super().send(call)
        sent = self._about.pop(id(call))
        sent.ts = answer.ts if call.method == "chat.postMessage" else sent.ts
        self._sent.append(sent)
        return answer


def _describe(session, owed, call) -> Sent:
    args, to = owed.args, call.args["channel"]
    kind = {Kind.FINDINGS_DIGEST: "digest", Kind.FINDINGS_RESOLVED: "resolved",
            Kind.FINDINGS_ESCALATED: "escalated", Kind.KEY_FINAL_WARNING: "final_warning",
            Kind.FINDINGS_SUMMARY: "summary", Kind.ACCOUNT_AUDIT: "audit"}.get(owed.kind)
    if owed.kind is Kind.FINDINGS_UPDATE:
        rows = findings.in_message(session, args["channel"], args["ts"])
        if not rows:
            return Sent("superseded", to, [], None, args["ts"])
        return Sent("update", to, [r.id for r in rows], None,
                    (args["ts"], [(r.status, r.snoozed_by, r.fixing_by) for r in rows]))
    if owed.kind is Kind.FINDINGS_DIGEST:
        rows = [findings.get_finding(session, i) for i in args["finding_ids"]]
        return Sent(kind, to, args["finding_ids"], None,
                    [(r.kind, r.key_id, r.status) for r in rows])
    if owed.kind is Kind.KEY_FINAL_WARNING:
        return Sent(kind, to, [args["finding_id"]], None, datetime.fromisoformat(args["when"]))
    if owed.kind is Kind.FINDINGS_SUMMARY:
        return Sent(kind, to, [], None, findings.summary(
            session, datetime.fromisoformat(args["at"]),
            timedelta(seconds=args["period_seconds"])))
    if owed.kind is Kind.ACCOUNT_AUDIT:
        return Sent(kind, to, [], None, [Deviation(*d) for d in args["deviations"]])
    if owed.kind is Kind.FINDINGS_LIST:
        return Sent("list", to, args["finding_ids"], None,
                    (call.args["initial_comment"], call.args["content"]))
    if owed.kind is Kind.FINDINGS_PREVIEW:
        return Sent("preview", to, [i for ids in args["by_owner"].values() for i in ids], None,
                    (sorted(args["by_owner"]), call.args["text"], call.args["blocks"]))
    if owed.kind is Kind.ADMIN_ALERT:
        return Sent("admin_alert", to, [], None, call.args["text"])
    return Sent(kind or owed.kind.value, to, args.get("finding_ids", []))
