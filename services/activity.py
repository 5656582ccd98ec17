"""What a grant was used for: CloudTrail events of its holder over its window, summarised.

Pure: events in, a JSON-serialisable Summary out (kept on the grant and on the audit row,
rendered in handlers/blocks.py). The events come from the `Activity` port
(services/ports.py; aws/cloudtrail.py reads CloudTrail's LookupEvents).
"""

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import quote

FIRST_FEW = 10  # write events listed by name; the rest are counted
FIRST_ERRORS = 5
MOST_IPS = 20
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                    "Client.UnauthorizedOperation", "UnauthorizedAccess"})
SIGN_IN = "AwsConsoleSignIn"


@dataclass(frozen=True)
class Event:
    """One CloudTrail event, the fields a summary reads."""

    time: datetime
    event_source: str          # "s3.amazonaws.com"
    event_name: str            # "PutObject"
    read_only: bool | None     # None: CloudTrail did not say
    error_code: str | None
    source_ip: str | None
    event_type: str | None     # "AwsApiCall", "AwsConsoleSignIn", ...
    region: str
    account: str               # "" for the bot's own account


@dataclass(frozen=True)
class Listed:
    """An event named in a summary: when, what, where."""

    time: str  # ISO 8601, UTC
    name: str  # "s3:PutObject"
    region: str
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    user_name: str
    start: str  # ISO 8601
    end: str
    events: int = 0
    by_service: dict[str, int] = field(default_factory=dict)  # most used first
    writes: int = 0
    first_writes: list[Listed] = field(default_factory=list)
    denied: int = 0
    first_denied: list[Listed] = field(default_factory=list)
    sign_ins: int = 0
    source_ips: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # region -> console link
    truncated: bool = False  # more events than the lookup reads: counts are a floor

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Summary":
        data = dict(data)
        data["first_writes"] = [Listed(**e) for e in data.get("first_writes", [])]
        data["first_denied"] = [Listed(**e) for e in data.get("first_denied", [])]
        return cls(**data)

    def compact(self) -> dict:
        """The summary without the lists of events and links: for the audit row."""
        return {"user_name": self.user_name, "events": self.events,
                "by_service": self.by_service, "writes": self.writes, "denied": self.denied,
                "sign_ins": self.sign_ins, "source_ips": self.source_ips,
                "truncated": self.truncated}


def service_of(event_source: str) -> str:
    return event_source.removesuffix(".amazonaws.com")


def summarize(events: list[Event], user_name: str, start: datetime, end: datetime,
              regions: tuple[str, ...], truncated: bool = False) -> Summary:
    """Counts by service, the write events, the refusals, the console sign-ins and the
    source IPs of `events` (any order), with a console link per region."""
    events = sorted(events, key=lambda e: e.time)
    sign_ins = [e for e in events if e.event_type == SIGN_IN or e.event_name == "ConsoleLogin"]
    writes = [e for e in events if e.read_only is False and e not in sign_ins]
    denied = [e for e in events if e.error_code in DENIED]
    by_service = Counter(service_of(e.event_source) for e in events)
    ips = Counter(e.source_ip for e in events if e.source_ip)
    return Summary(
        user_name=user_name, start=start.isoformat(), end=end.isoformat(),
        events=len(events), by_service=dict(by_service.most_common()),
        writes=len(writes), first_writes=[_listed(e) for e in writes[:FIRST_FEW]],
        denied=len(denied), first_denied=[_listed(e) for e in denied[:FIRST_ERRORS]],
        sign_ins=len(sign_ins), source_ips=[ip for ip, _ in ips.most_common(MOST_IPS)],
        links={region: console_link(region, user_name, start, end) for region in regions},
        truncated=truncated)


def console_link(region: str, user_name: str, start: datetime, end: datetime) -> str:
    """CloudTrail's Event history in `region`, filtered on the user name and the window.

    The `#/events?Username=` filter is the console's own route; its StartTime and EndTime
    parameters are not documented by AWS (the console ignores what it does not know)."""
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in (
        ("Username", user_name), ("StartTime", _utc(start)), ("EndTime", _utc(end))))
    return (f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}"
            f"#/events?{query}")


def _listed(event: Event) -> Listed:
    return Listed(time=_utc(event.time), name=f"{service_of(event.event_source)}:"
                  f"{event.event_name}", region=event.region, error=event.error_code)


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
