"""The pure summary of a grant's CloudTrail events, and the cloudtrail: config section."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from accessbot.services.activity import Event, Summary, console_link, summarize
from accessbot.services.errors import ConfigError
from tests.factories import make_catalog

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=2)


def event(minute: int, source="s3.amazonaws.com", name="GetObject", read_only=True,
          error=None, ip="198.51.100.7", event_type="AwsApiCall", region="us-east-1"):
    return Event(START + timedelta(minutes=minute), source, name, read_only, error, ip,
                 event_type, region, "")


def test_counts_writes_refusals_sign_ins_and_ips():
    events = [
        event(30, name="PutObject", read_only=False, ip="203.0.113.9"),
        event(1, "signin.amazonaws.com", "ConsoleLogin", read_only=False,
              event_type="AwsConsoleSignIn"),
        event(2),
        event(3, "ec2.amazonaws.com", "RunInstances", read_only=False,
              error="Client.UnauthorizedOperation"),
        event(4, "iam.amazonaws.com", "ListUsers", error="AccessDenied"),
        event(5, "s3.amazonaws.com", "HeadBucket", read_only=None, ip=None),
    ]
    summary = summarize(events, "alice", START, END, ("us-east-1",))

    assert summary.events == 6
    assert summary.by_service == {"s3": 3, "signin": 1, "ec2": 1, "iam": 1}
    assert summary.writes == 2  # the sign-in counts as a sign-in, not as a change
    assert [(w.time, w.name) for w in summary.first_writes] == [
        ("2026-12-05T09:03:00Z", "ec2:RunInstances"), ("2026-12-05T09:30:00Z", "s3:PutObject")]
    assert summary.denied == 2
    assert [d.error for d in summary.first_denied] == ["Client.UnauthorizedOperation",
                                                        "AccessDenied"]
    assert summary.sign_ins == 1
    assert summary.source_ips == ["198.51.100.7", "203.0.113.9"]  # the most used first
    assert list(summary.links) == ["us-east-1"]


def test_only_the_first_writes_are_listed_and_all_counted():
    summary = summarize([event(n, name=f"Put{n}", read_only=False) for n in range(25)],
                        "alice", START, END, ())
    assert summary.writes == 25
    assert [w.name for w in summary.first_writes] == [f"s3:Put{n}" for n in range(10)]


def test_nothing_done_is_an_empty_summary_with_its_links():
    summary = summarize([], "alice", START, END, ("us-east-1", "eu-west-1"))
    assert (summary.events, summary.writes, summary.by_service) == (0, 0, {})
    assert list(summary.links) == ["us-east-1", "eu-west-1"]


def test_a_summary_goes_through_json_unchanged():
    summary = summarize([event(1, name="PutObject", read_only=False, error="AccessDenied")],
                        "alice", START, END, ("us-east-1",), truncated=True)
    again = Summary.from_json(json.loads(json.dumps(summary.to_json())))
    assert again == summary
    assert json.loads(json.dumps(summary.compact()))["truncated"] is True


def test_the_console_link_filters_on_the_user_and_the_window():
    link = console_link("eu-west-1", "alice+ops@example.com", START, END)
    assert link.startswith("https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?"
                           "region=eu-west-1#/events?")
    assert "Username=alice%2Bops%40example.com" in link
    assert "StartTime=2026-12-05T09%3A00%3A00Z" in link
    assert "EndTime=2026-12-05T11%3A00%3A00Z" in link
    assert not set("<>| ") & set(link)  # safe inside a mrkdwn link


def test_cloudtrail_section_defaults():
    cloudtrail = make_catalog().cloudtrail
    assert cloudtrail.enabled and cloudtrail.delay == timedelta(minutes=15)
    assert cloudtrail.regions == ()


def test_cloudtrail_section_is_read():
    cloudtrail = make_catalog(cloudtrail={"enabled": False, "delay": "1s",
                                          "regions": ["eu-west-1", "us-east-1"]}).cloudtrail
    assert (cloudtrail.enabled, cloudtrail.delay, cloudtrail.regions) == (
        False, timedelta(seconds=1), ("eu-west-1", "us-east-1"))


@pytest.mark.parametrize("section, where", [
    ({"regions": ["mars-1"]}, "cloudtrail.regions[0]"),
    ({"regions": "eu-west-1"}, "cloudtrail.regions"),
    ({"regions": ["eu-west-1", "eu-west-1"]}, "cloudtrail.regions"),
    ({"enabled": "yes"}, "cloudtrail.enabled"),
    ({"delay": "soon"}, "cloudtrail.delay"),
    ({"delay": "2d"}, "cloudtrail.delay"),
    ({"lake_event_data_store": "arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/x"},
     "cloudtrail.lake_event_data_store"),
    ({"region": "eu-west-1"}, "cloudtrail.region"),
    (["eu-west-1"], "cloudtrail"),
])
def test_cloudtrail_section_errors_name_the_bad_value(section, where):
    with pytest.raises(ConfigError, match=f"{where.replace('[', '.').replace(']', '.')}:"):
        make_catalog(cloudtrail=section)
