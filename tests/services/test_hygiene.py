"""evaluate() over hand-built credential report rows, and match_key()."""

from datetime import UTC, datetime, timedelta

import pytest

from accessbot.services.hygiene import (
    ROOT_USER,
    AccessKey,
    CredentialRow,
    Finding,
    FindingKind,
    HygienePolicy,
    KeySlot,
    evaluate,
    key_subject,
    match_key,
)

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
POLICY = HygienePolicy()
SECOND = timedelta(seconds=1)
K = FindingKind


def ago(delta: timedelta | None = None, **parts: float) -> datetime:
    return NOW - (delta if delta is not None else timedelta(**parts))


def key(slot: int = 1, *, active: bool = True, rotated: datetime | None = None,
        used: datetime | None = None, service: str | None = None,
        region: str | None = None) -> KeySlot:
    """An access key slot; by default active, rotated 10 days ago, never used."""
    return KeySlot(slot=slot, active=active,
                   last_rotated=rotated if rotated is not None else ago(days=10),
                   last_used=used, last_used_region=region, last_used_service=service)


NEVER = None  # readability: key(used=NEVER), row(password_used=NEVER)
YESTERDAY, LAST_MONTH = ago(days=1), ago(days=30)


def row(user: str = "alice", *, created: datetime | None = None, password: bool = True,
        password_used: datetime | None = YESTERDAY, password_changed: datetime | None = None,
        mfa: bool = True, keys: tuple[KeySlot, ...] = ()) -> CredentialRow:
    """A report row, healthy unless told otherwise; missing key slots are empty (inactive)."""
    given = {k.slot for k in keys}
    empty = tuple(KeySlot(n, False, None, None, None, None) for n in (1, 2) if n not in given)
    return CredentialRow(
        user=user, arn=f"arn:aws:iam::123456789012:user/{user}",
        user_created=created if created is not None else ago(days=400),
        password_enabled=password, password_last_used=password_used,
        password_last_changed=password_changed, mfa_active=mfa,
        keys=tuple(sorted(keys + empty, key=lambda k: k.slot)))


def root(*, mfa: bool = True, password_used: datetime | None = LAST_MONTH,
         keys: tuple[KeySlot, ...] = ()) -> CredentialRow:
    return row(ROOT_USER, password=False, password_used=password_used, mfa=mfa, keys=keys)


def run(*rows: CredentialRow, policy: HygienePolicy = POLICY,
        now: datetime = NOW) -> list[Finding]:
    return evaluate(list(rows), policy, now)


def kinds(findings: list[Finding]) -> list[FindingKind]:
    return [f.kind for f in findings]


def test_a_healthy_user_has_no_findings():
    healthy = row(keys=(key(rotated=ago(days=10), used=ago(hours=1), service="s3"),))
    assert run(healthy) == []


# -- keys -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("age", "expected"), [
    (POLICY.access_key_max_age - SECOND, []),
    (POLICY.access_key_max_age, []),                       # at the threshold: not yet
    (POLICY.access_key_max_age + timedelta(microseconds=1), [K.KEY_TOO_OLD]),
    (POLICY.access_key_max_age + SECOND, [K.KEY_TOO_OLD]),
])
def test_key_too_old_at_and_around_its_threshold(age, expected):
    rotated = ago(age)
    findings = run(row(keys=(key(2, rotated=rotated, used=ago(hours=2), service="s3",
                                 region="eu-west-1"),)))
    assert kinds(findings) == expected
    if expected:
        assert findings[0] == Finding(
            "alice", K.KEY_TOO_OLD, key_subject(rotated), since=rotated, last_used=ago(hours=2),
            last_used_where="s3 in eu-west-1", key_slot=2, key_created=rotated)


@pytest.mark.parametrize(("idle", "expected"), [
    (POLICY.unused_credential_age - SECOND, []),
    (POLICY.unused_credential_age, []),
    (POLICY.unused_credential_age + SECOND, [K.KEY_UNUSED]),
])
def test_key_unused_at_and_around_its_threshold(idle, expected):
    rotated, used = ago(days=60), ago(idle)
    findings = run(row(keys=(key(rotated=rotated, used=used, service="sts",
                                 region="us-east-1"),)))
    assert kinds(findings) == expected
    if expected:
        assert findings[0] == Finding(
            "alice", K.KEY_UNUSED, key_subject(rotated), since=used, last_used=used,
            last_used_where="sts in us-east-1", key_slot=1, key_created=rotated)


@pytest.mark.parametrize(("age", "expected"), [
    (POLICY.unused_credential_age, []),
    (POLICY.unused_credential_age + SECOND, [K.KEY_UNUSED]),
])
def test_a_never_used_key_is_unused_counting_from_its_creation(age, expected):
    rotated = ago(age)
    findings = run(row(keys=(key(rotated=rotated, used=NEVER),)))
    assert kinds(findings) == expected
    if expected:
        assert findings[0] == Finding("alice", K.KEY_UNUSED, key_subject(rotated), since=rotated,
                                      key_slot=1, key_created=rotated)


def test_an_old_unused_key_has_both_findings_too_old_first():
    rotated, used = ago(days=200), ago(days=100)
    findings = run(row(keys=(key(rotated=rotated, used=used),)))
    assert [(f.kind, f.subject, f.since) for f in findings] == [
        (K.KEY_TOO_OLD, key_subject(rotated), rotated),
        (K.KEY_UNUSED, key_subject(rotated), used)]


@pytest.mark.parametrize(("service", "region", "where"), [
    ("s3", "eu-west-1", "s3 in eu-west-1"),
    ("iam", None, "iam"),
    (None, None, None),
])
def test_where_a_key_was_last_used(service, region, where):
    findings = run(row(keys=(key(rotated=ago(days=100), used=ago(hours=1), service=service,
                                 region=region),)))
    assert [f.last_used_where for f in findings] == [where]


def test_inactive_key_slots_are_ignored():
    stale = key(2, active=False, rotated=ago(days=900), used=NEVER)
    findings = run(row(keys=(key(1, rotated=ago(days=5), used=ago(hours=1)), stale)))
    assert findings == []


def test_an_active_slot_without_a_rotation_time_is_ignored():
    slot = KeySlot(1, True, None, None, None, None)
    assert run(row(keys=(slot,))) == []


def test_rotating_a_key_gives_its_findings_a_new_subject():
    before = ago(days=100)
    after = before + timedelta(days=1)  # rotated, but the new key is too old as well
    old = run(row(keys=(key(rotated=before, used=ago(hours=1)),)))
    new = run(row(keys=(key(rotated=after, used=ago(hours=1)),)))
    assert [f.key for f in old] == [("alice", "key_too_old", key_subject(before))]
    assert [f.key for f in new] == [("alice", "key_too_old", key_subject(after))]


def test_key_subject_is_the_creation_time_in_whole_epoch_seconds():
    assert key_subject(datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) == "key:1767225600"


def test_two_active_keys_are_multiple_keys_since_the_newer_one():
    older, newer = ago(days=30), ago(days=3)
    findings = run(row(keys=(key(1, rotated=newer, used=ago(hours=1)),
                             key(2, rotated=older, used=ago(hours=1)))))
    assert findings == [Finding("alice", K.MULTIPLE_KEYS, "keys", since=newer)]


def test_one_active_and_one_inactive_key_are_not_multiple_keys():
    findings = run(row(keys=(key(1, used=ago(hours=1)),
                             key(2, active=False, used=ago(hours=1)))))
    assert findings == []


# -- password -------------------------------------------------------------------------------

@pytest.mark.parametrize(("idle", "expected"), [
    (POLICY.unused_credential_age - SECOND, []),
    (POLICY.unused_credential_age, []),
    (POLICY.unused_credential_age + SECOND, [K.PASSWORD_UNUSED]),
])
def test_password_unused_at_and_around_its_threshold(idle, expected):
    used = ago(idle)
    findings = run(row(password_used=used, password_changed=ago(days=300),
                       keys=(key(used=ago(hours=1)),)))
    assert findings == [Finding("alice", k, "password", since=used, last_used=used)
                        for k in expected]


@pytest.mark.parametrize(("changed", "expected"), [
    (ago(POLICY.unused_credential_age), []),
    (ago(POLICY.unused_credential_age + SECOND), [K.PASSWORD_UNUSED]),
])
def test_a_never_used_password_counts_from_its_last_change(changed, expected):
    findings = run(row(password_used=NEVER, password_changed=changed,
                       keys=(key(used=ago(hours=1)),)))
    assert findings == [Finding("alice", k, "password", since=changed) for k in expected]


def test_a_never_used_password_never_changed_counts_from_the_users_creation():
    created = ago(days=50)
    findings = run(row(created=created, password_used=NEVER, password_changed=NEVER,
                       keys=(key(used=ago(hours=1)),)))
    assert findings == [Finding("alice", K.PASSWORD_UNUSED, "password", since=created)]


def test_no_password_no_password_findings():
    findings = run(row(password=False, password_used=NEVER, mfa=False,
                       keys=(key(used=ago(hours=1)),)))
    assert findings == []


def test_a_password_without_mfa_is_no_mfa_since_the_password_was_set():
    changed = ago(days=20)
    assert run(row(mfa=False, password_changed=changed)) == [
        Finding("alice", K.NO_MFA, "password", since=changed)]


def test_no_mfa_falls_back_to_the_users_creation():
    created = ago(days=20)
    assert run(row(created=created, mfa=False, password_changed=NEVER)) == [
        Finding("alice", K.NO_MFA, "password", since=created)]


# -- user -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("idle", "expected"), [
    (POLICY.unused_user_age - SECOND, []),
    (POLICY.unused_user_age, []),
    (POLICY.unused_user_age + SECOND, [K.USER_INACTIVE]),
])
def test_user_inactive_at_and_around_its_threshold(idle, expected):
    used = ago(idle)
    findings = run(row(password=False, password_used=used))
    assert findings == [Finding("alice", k, "user", since=used, last_used=used)
                        for k in expected]


def test_user_inactive_uses_the_newest_activity_of_any_kind():
    newest = ago(POLICY.unused_user_age - SECOND)  # the inactive key's use: still active
    user = row(password=False, password_used=ago(days=300),
               keys=(key(1, active=False, rotated=ago(days=400), used=newest),
                     key(2, active=False, rotated=ago(days=400), used=ago(days=200))))
    assert run(user) == []
    newest = ago(POLICY.unused_user_age + SECOND)
    user = row(password=False, password_used=ago(days=300),
               keys=(key(1, active=False, rotated=ago(days=400), used=ago(days=200)),
                     key(2, active=False, rotated=ago(days=400), used=newest)))
    assert run(user) == [Finding("alice", K.USER_INACTIVE, "user", since=newest,
                                 last_used=newest)]


def test_a_user_never_active_is_inactive_from_creation():
    created = ago(POLICY.unused_user_age + SECOND)
    assert run(row(created=created, password=False, password_used=NEVER)) == [
        Finding("alice", K.USER_INACTIVE, "user", since=created)]


@pytest.mark.parametrize("age", [timedelta(days=1), POLICY.unused_user_age])
def test_a_new_user_is_never_inactive(age):
    assert run(row(created=ago(age), password=False, password_used=NEVER)) == []


def test_a_new_user_is_never_inactive_even_with_an_older_recorded_use():
    # a user deleted and created again under the same name: no inactivity to speak of
    assert run(row(created=ago(days=10), password=False, password_used=ago(days=200))) == []


# -- root -----------------------------------------------------------------------------------

def test_a_healthy_root_has_no_findings():
    assert run(root()) == []


def test_root_keys_are_one_finding_for_both_keys_and_no_other_kind():
    first, second = ago(days=700), ago(days=500)
    findings = run(root(keys=(key(1, rotated=second, used=NEVER),
                              key(2, rotated=first, used=NEVER))))
    assert findings == [Finding(ROOT_USER, K.ROOT_KEYS, "root-keys", since=first)]


def test_root_inactive_keys_are_no_finding():
    assert run(root(keys=(key(1, active=False, rotated=ago(days=700)),))) == []


def test_root_without_mfa():
    assert run(root(mfa=False, password_used=NEVER)) == [
        Finding(ROOT_USER, K.ROOT_NO_MFA, "root-mfa", since=ago(days=400))]


@pytest.mark.parametrize(("age", "expected"), [
    (timedelta(0), [K.ROOT_USED]),
    (POLICY.root_used_within, [K.ROOT_USED]),  # within: the threshold itself counts
    (POLICY.root_used_within + SECOND, []),
])
def test_root_password_used_within_the_window(age, expected):
    used = ago(age)
    assert run(root(password_used=used)) == [
        Finding(ROOT_USER, k, f"root-used:{int(used.timestamp())}", since=used, last_used=used)
        for k in expected]


def test_root_key_use_counts_and_says_where():
    used = ago(hours=3)
    findings = run(root(password_used=ago(days=3),
                        keys=(key(1, active=False, used=used, service="ec2", region="us-east-1"),)))
    assert findings == [Finding(ROOT_USER, K.ROOT_USED, f"root-used:{int(used.timestamp())}",
                                since=used, last_used=used, last_used_where="ec2 in us-east-1")]


def test_each_new_root_use_is_a_new_finding():
    first = run(root(password_used=ago(hours=5)))
    second = run(root(password_used=ago(hours=1)))
    assert first[0].key != second[0].key


# -- thresholds, order ----------------------------------------------------------------------

def test_custom_thresholds_of_one_second():
    policy = HygienePolicy(access_key_max_age=SECOND, unused_credential_age=SECOND,
                           unused_user_age=SECOND, root_used_within=SECOND)
    fresh = row(created=ago(seconds=1), password_used=ago(seconds=1),
                keys=(key(rotated=ago(seconds=1), used=ago(seconds=1)),))
    assert run(fresh, policy=policy) == []
    stale = row(created=ago(seconds=2), password_used=ago(seconds=2),
                keys=(key(rotated=ago(seconds=2), used=ago(seconds=2)),))
    assert kinds(run(stale, policy=policy)) == [
        K.KEY_TOO_OLD, K.KEY_UNUSED, K.PASSWORD_UNUSED, K.USER_INACTIVE]
    assert kinds(run(root(password_used=ago(seconds=2)), policy=policy)) == []
    assert kinds(run(root(password_used=ago(seconds=1)), policy=policy)) == [K.ROOT_USED]


def test_findings_come_in_row_order_then_kind_order():
    too_old_only = key(1, rotated=ago(days=100), used=ago(hours=1))
    unused_only = key(2, rotated=ago(days=50), used=NEVER)
    bob = row("bob", created=ago(days=400), password_used=ago(days=95), mfa=False,
              password_changed=ago(days=300), keys=(too_old_only, unused_only))
    old_bob = row("bob", created=ago(days=400), password_used=ago(days=95), mfa=False,
                  password_changed=ago(days=300),
                  keys=(key(1, rotated=ago(days=100), used=ago(days=91)),
                        key(2, active=False, used=NEVER)))
    findings = run(row("zed", mfa=False), bob, root(mfa=False), old_bob)
    assert [(f.iam_user, f.kind, f.key_slot) for f in findings] == [
        ("zed", K.NO_MFA, None),
        ("bob", K.KEY_TOO_OLD, 1),
        ("bob", K.KEY_UNUSED, 2),
        ("bob", K.PASSWORD_UNUSED, None),
        ("bob", K.NO_MFA, None),
        ("bob", K.MULTIPLE_KEYS, None),
        (ROOT_USER, K.ROOT_NO_MFA, None),
        ("bob", K.KEY_TOO_OLD, 1),
        ("bob", K.KEY_UNUSED, 1),
        ("bob", K.PASSWORD_UNUSED, None),
        ("bob", K.NO_MFA, None),
        ("bob", K.USER_INACTIVE, None)]


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        run(row(), now=NOW.replace(tzinfo=None))


# -- match_key ------------------------------------------------------------------------------

REPORTED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)  # the report has whole seconds


def test_match_key_finds_the_key_created_in_the_same_second():
    other = AccessKey("AKIAOTHER", True, REPORTED - SECOND)
    wanted = AccessKey("AKIAWANTED", True, REPORTED)
    assert match_key(REPORTED, [other, wanted]) is wanted


def test_match_key_ignores_the_sub_second_part_of_create_date():
    wanted = AccessKey("AKIAWANTED", True, REPORTED.replace(microsecond=987_654))
    later = AccessKey("AKIALATER", True, REPORTED + SECOND)
    assert match_key(REPORTED, [later, wanted]) is wanted


@pytest.mark.parametrize("created", [REPORTED, None])
def test_match_key_without_a_match_is_none(created):
    keys = [AccessKey("AKIABEFORE", True, REPORTED - timedelta(microseconds=1)),
            AccessKey("AKIAAFTER", True, REPORTED + SECOND)]
    assert match_key(created, keys) is None
