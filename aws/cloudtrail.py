"""services.ports.Activity on CloudTrail's Event history (LookupEvents).

LookupEvents answers at most 2 calls a second per account and region: one `RateLimiter`,
shared by every thread, spaces the calls, and a ThrottlingException is retried here with
backoff (the client itself does not retry: its adaptive mode would second-guess the
limiter). Events are read by the Username lookup attribute, which finds an IAM user's own
calls and the sessions of roles named after it (a role grant enforces that session name,
aws/iam.py), page by page (50 a page) up to MAX_PAGES.
"""

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.aws.accounts import as_unreachable, assumed_session
from accessbot.aws.session import default_region, make_client
from accessbot.services.activity import Event
from accessbot.services.catalog import Account
from accessbot.services.ports import ActivityEvents, ProviderError

CALLS_PER_SECOND = 2.0  # LookupEvents' quota, per account and region
PAGE = 50               # LookupEvents' largest page
MAX_PAGES = 40          # 2,000 events per account and region: the summary says "at least"
THROTTLE_RETRIES = 4
FIRST_BACKOFF = 1.0     # seconds, doubled on each throttled retry
THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                       "RequestLimitExceeded"})
REFUSED = frozenset({"AccessDeniedException", "AccessDenied", "InvalidLookupAttributesException",
                     "InvalidTimeRangeException", "OperationNotPermittedException",
                     "UnrecognizedClientException"})
# the adapter owns throttling and pacing: one attempt per call
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


class RateLimiter:
    """At most `per_second` calls a second for each key, for every thread together: each
    call reserves the next free slot of its key and sleeps until it comes."""

    def __init__(self, per_second: float = CALLS_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._gap = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: dict[object, float] = {}

    def wait(self, key: object) -> None:
        with self._lock:
            now = self._clock()
            at = max(now, self._next.get(key, now))
            self._next[key] = at + self._gap
        if at > now:
            self._sleep(at - now)


class CloudTrailActivity:
    """Activity: LookupEvents in each configured region of the account ('' = the bot's own;
    another through the role assumed there)."""

    def __init__(self, client_for: Callable[[str, str], BaseClient],
                 regions: tuple[str, ...] = (), limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_pages: int = MAX_PAGES):
        self._client_for = client_for
        self.regions = regions or (default_region(),)
        self._limiter = limiter or RateLimiter()
        self._sleep = sleep
        self._max_pages = max_pages
        self._clients: dict[tuple[str, str], BaseClient] = {}
        self._lock = threading.Lock()

    def events(self, account: str, user_name: str, start: datetime,
               end: datetime) -> ActivityEvents:
        found: list[Event] = []
        truncated = False
        for region in self.regions:
            events, more = self._region(account, region, user_name, start, end)
            found += events
            truncated = truncated or more
        return ActivityEvents(found, self.regions, truncated)

    def _region(self, account: str, region: str, user_name: str, start: datetime,
                end: datetime) -> tuple[list[Event], bool]:
        client = self._client(account, region)
        asked = {"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": user_name}],
                 "StartTime": start, "EndTime": end, "MaxResults": PAGE}
        events: list[Event] = []
        token = None
        for _ in range(self._max_pages):
            page = self._call(client, account, region,
                              {**asked, "NextToken": token} if token else asked)
            events += [_event(raw, region, account) for raw in page.get("Events", [])]
            token = page.get("NextToken")
            if not token:
                return events, False
        return events, True  # more pages than we read

    def _call(self, client: BaseClient, account: str, region: str, asked: dict) -> dict:
        backoff = FIRST_BACKOFF
        for attempt in range(THROTTLE_RETRIES + 1):
            self._limiter.wait((account, region))
            try:
                return client.lookup_events(**asked)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in THROTTLED and attempt < THROTTLE_RETRIES:
                    self._sleep(backoff)
                    backoff *= 2
                    continue
                error = ProviderError(f"CloudTrail LookupEvents in {account or 'own account'} "
                                      f"{region}: {exc}", retryable=code not in REFUSED)
                raise as_unreachable(error, account, exc) if account else error from exc
            except BotoCoreError as exc:
                error = ProviderError(f"CloudTrail LookupEvents in {account or 'own account'} "
                                      f"{region}: {exc}")
                raise as_unreachable(error, account, exc) if account else error from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _client(self, account: str, region: str) -> BaseClient:
        with self._lock:
            if (account, region) not in self._clients:
                self._clients[account, region] = self._client_for(account, region)
            return self._clients[account, region]


def make_cloudtrail(accounts: dict[str, Account], regions: tuple[str, ...],
                    connections: int = 4) -> CloudTrailActivity:
    """The adapter on the bot's own credentials, and on the role of each account of
    `accounts` (id -> account) for lookups there."""
    sessions: dict[str, object] = {}
    lock = threading.Lock()

    def client_for(account: str, region: str) -> BaseClient:
        if not account:
            return make_client("cloudtrail", region, connections, config=ONE_ATTEMPT)
        if account not in accounts:
            raise ProviderError(f"account {account} has no role_arn in accounts:",
                                retryable=False)
        with lock:
            if account not in sessions:
                sessions[account] = assumed_session(accounts[account])
        return make_client("cloudtrail", region, connections, session=sessions[account],
                           config=ONE_ATTEMPT)

    return CloudTrailActivity(client_for, regions)


def _event(raw: dict, region: str, account: str) -> Event:
    try:
        detail = json.loads(raw.get("CloudTrailEvent") or "{}")
    except ValueError:
        detail = {}
    read_only = detail.get("readOnly")
    if read_only is None and raw.get("ReadOnly") in ("true", "false"):
        read_only = raw["ReadOnly"] == "true"
    when = raw.get("EventTime") or datetime.now(UTC)
    return Event(time=when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC),
                 event_source=raw.get("EventSource") or detail.get("eventSource") or "",
                 event_name=raw.get("EventName") or detail.get("eventName") or "",
                 read_only=read_only if isinstance(read_only, bool) else None,
                 error_code=detail.get("errorCode"), source_ip=detail.get("sourceIPAddress"),
                 event_type=detail.get("eventType"),
                 region=detail.get("awsRegion") or region, account=account)
