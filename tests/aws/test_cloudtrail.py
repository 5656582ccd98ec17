"""CloudTrailActivity with a real boto3 client (aws.session's, so the calls are counted for
tests/least_privilege.py) against the local fake of LookupEvents: pages, throttling, the
rate limit, the user and the window asked for."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from accessbot.aws.cloudtrail import ONE_ATTEMPT, CloudTrailActivity, RateLimiter, make_cloudtrail
from accessbot.aws.session import make_client
from accessbot.services.ports import ProviderError
from tests.fakes.cloudtrail import FakeCloudTrail

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


class FakeClock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def trail(aws_env, monkeypatch):
    with FakeCloudTrail() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", fake.url)
        yield fake


def adapter(clock: FakeClock, regions=("us-east-1",), **kwargs) -> CloudTrailActivity:
    return CloudTrailActivity(
        lambda account, region: make_client("cloudtrail", region, 4, config=ONE_ATTEMPT),
        regions, limiter=RateLimiter(clock=clock, sleep=clock.sleep), sleep=clock.sleep,
        **kwargs)


def seed(trail, count: int, user="alice", start=START) -> None:
    for n in range(count):
        trail.add(user, start + timedelta(seconds=10 * n + 1), "s3.amazonaws.com",
                  f"Op{n}", read_only=n % 2 == 0)


def test_every_page_is_read_and_parsed(trail):
    seed(trail, 120)
    trail.add("alice", START + timedelta(minutes=5), "ec2.amazonaws.com", "RunInstances",
              read_only=False, error_code="Client.UnauthorizedOperation", source_ip="203.0.113.9",
              region="eu-west-1")
    found = adapter(FakeClock()).events("", "alice", START, END)

    assert len(found.events) == 121 and not found.truncated
    assert found.regions == ("us-east-1",)
    assert len(trail.answered()) == 3  # 50 + 50 + 21
    assert [c.body.get("NextToken") for c in trail.answered()] == [None, "50", "100"]
    denied = next(e for e in found.events if e.event_name == "RunInstances")
    assert (denied.event_source, denied.read_only, denied.error_code, denied.source_ip,
            denied.event_type, denied.region, denied.account) == (
        "ec2.amazonaws.com", False, "Client.UnauthorizedOperation", "203.0.113.9",
        "AwsApiCall", "eu-west-1", "")
    assert denied.time == START + timedelta(minutes=5)


def test_the_user_and_the_window_are_asked_for(trail):
    seed(trail, 3)
    seed(trail, 2, user="bob")
    trail.add("alice", START - timedelta(minutes=1), "s3.amazonaws.com", "Before")
    trail.add("alice", END + timedelta(minutes=1), "s3.amazonaws.com", "After")
    found = adapter(FakeClock()).events("", "alice", START, END)

    assert sorted(e.event_name for e in found.events) == ["Op0", "Op1", "Op2"]
    [call] = trail.calls
    assert call.body["LookupAttributes"] == [{"AttributeKey": "Username",
                                              "AttributeValue": "alice"}]
    assert (call.body["StartTime"], call.body["EndTime"]) == (START.timestamp(),
                                                              END.timestamp())
    assert call.body["MaxResults"] == 50


def test_throttling_is_retried_with_backoff(trail):
    seed(trail, 60)
    trail.throttle(2)
    clock = FakeClock()
    found = adapter(clock).events("", "alice", START, END)

    assert len(found.events) == 60
    assert [c.status for c in trail.calls] == [400, 400, 200, 200]
    assert 1.0 in clock.slept and 2.0 in clock.slept  # the backoff, doubling


def test_throttled_too_often_is_a_retryable_failure(trail):
    seed(trail, 1)
    trail.throttle(100)
    with pytest.raises(ProviderError) as failed:
        adapter(FakeClock()).events("", "alice", START, END)
    assert failed.value.retryable and "ThrottlingException" in str(failed.value)
    assert len(trail.calls) == 5  # the first try and 4 retries


def test_at_most_two_calls_a_second_per_account_and_region(trail):
    seed(trail, 250)  # 5 pages
    clock = FakeClock()
    adapter(clock, regions=("us-east-1", "eu-west-1")).events("", "alice", START, END)

    assert len(trail.answered()) == 10
    # each region's 5 calls: 4 waits of half a second; the second region starts afresh
    assert clock.slept == [0.5] * 8


def test_the_limiter_spaces_calls_of_many_threads():
    clock, lock = FakeClock(), threading.Lock()
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:
            clock.slept.append(seconds)

    limiter = RateLimiter(per_second=2, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=limiter.wait, args=(("", "us-east-1"),))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    starts = sorted(clock.slept)
    assert starts == [0.5, 1.0, 1.5, 2.0, 2.5]  # one at once, then every half second
    limiter.wait(("", "eu-west-1"))  # another region: its own budget
    assert len(clock.slept) == 5


def test_more_pages_than_read_is_said(trail):
    seed(trail, 120)
    found = adapter(FakeClock(), max_pages=2).events("", "alice", START, END)
    assert len(found.events) == 100 and found.truncated


def test_an_account_without_a_role_is_refused_for_good(trail):
    with pytest.raises(ProviderError) as failed:
        make_cloudtrail({}, ("us-east-1",)).events("222222222222", "alice", START, END)
    assert not failed.value.retryable
