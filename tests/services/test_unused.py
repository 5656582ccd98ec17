from datetime import UTC, datetime, timedelta

from accessbot.services.ports import ServiceUse
from accessbot.services.unused import unused_summary, used_within

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
AGE = timedelta(days=90)


def use(namespace: str, days_ago: int | None) -> ServiceUse:
    return ServiceUse(namespace, namespace.upper(),
                      None if days_ago is None else NOW - timedelta(days=days_ago))


def test_names_the_services_used_within_the_age_most_recent_first():
    uses = [use("ec2", None), use("s3", 3), use("logs", 1), use("iam", 91), use("kms", None)]
    assert unused_summary(uses, NOW, AGE) == "grants 5 services, used 2 in 90d: logs, s3"


def test_a_service_used_exactly_at_the_cutoff_counts_as_used():
    assert [u.namespace for u in used_within([use("s3", 90), use("ec2", 91)], NOW, AGE)] == ["s3"]


def test_nothing_to_say_when_every_granted_service_was_used_or_nothing_is_granted():
    assert unused_summary([use("s3", 1), use("logs", 89)], NOW, AGE) is None
    assert unused_summary([], NOW, AGE) is None


def test_none_used_and_many_used_are_worded():
    assert unused_summary([use("s3", None)], NOW, AGE) == "grants 1 service, used none in 90d"
    many = [use(f"svc{i}", i) for i in range(7)] + [use("ec2", None)]
    assert unused_summary(many, NOW, AGE) == \
        "grants 8 services, used 7 in 90d: svc0, svc1, svc2, svc3, svc4 and 2 more"
