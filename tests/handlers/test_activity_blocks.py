"""The activity summary's Block Kit, on summaries built in memory."""

import json
from datetime import UTC, datetime, timedelta

from accessbot.handlers.activity_blocks import activity_summary
from accessbot.handlers.mrkdwn import SECTION_TEXT
from accessbot.models import Grant
from accessbot.services.activity import Event, summarize

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
GRANT = Grant(id=7, request_id=42, requester_id="U0ALICE", iam_user="alice",
              resource="prod-admins", kind="iam_group", target="prod-admins")


def event(n: int, source="s3.amazonaws.com", name="PutObject", read_only=False, error=None,
          ip="198.51.100.7") -> Event:
    return Event(START + timedelta(seconds=n), source, name, read_only, error, ip,
                 "AwsApiCall", "us-east-1", "")


def texts(blocks: list[dict]) -> str:
    return json.dumps(blocks)


def test_the_summary_says_counts_changes_refusals_and_links():
    summary = summarize([event(1), event(2, "iam.amazonaws.com", "ListUsers", True,
                                         "AccessDenied")], "alice", START, END, ("us-east-1",))
    text, blocks = activity_summary(GRANT, summary)
    assert "<@U0ALICE>" in blocks[0]["text"]["text"]
    assert "*2 events*: s3 1, iam 1" in blocks[0]["text"]["text"]
    assert "`s3:PutObject`" in blocks[1]["text"]["text"]
    assert "(AccessDenied)" in blocks[2]["text"]["text"]
    assert blocks[-1]["type"] == "context"
    assert "|Event history in us-east-1>" in blocks[-1]["elements"][0]["text"]
    assert text.startswith("What <@U0ALICE> did with prod-admins (grant #7): 2 events")


def test_to_the_requester_it_says_you():
    _, blocks = activity_summary(GRANT, summarize([], "alice", START, END, ("us-east-1",)),
                                 to_requester=True)
    assert "What you did" in blocks[0]["text"]["text"]
    assert "No events recorded" in blocks[0]["text"]["text"]


def test_what_aws_says_is_escaped():
    summary = summarize([event(1, name="<!channel>", ip="<https://evil|click>",
                               error="<@U0EVE>")],
                        "<!here>", START, END, ("us-east-1",))
    _, blocks = activity_summary(GRANT, summary)
    rendered = texts(blocks)
    for markup in ("<!channel>", "<!here>", "<https://evil", "<@U0EVE>"):
        assert markup not in rendered
    assert "&lt;!channel&gt;" in rendered


def test_a_busy_grant_stays_within_block_kit_limits():
    events = [event(n, f"service{n % 80}.amazonaws.com", f"Op{n}" * 20, n % 3 == 0,
                    "AccessDenied" if n % 5 == 0 else None, f"203.0.113.{n % 250}")
              for n in range(3000)]
    summary = summarize(events, "alice", START, END,
                        tuple(f"eu-west-{n}" for n in range(1, 4)), truncated=True)
    _, blocks = activity_summary(GRANT, summary)
    assert len(blocks) <= 50
    for block in blocks:
        text = block["text"]["text"] if "text" in block else block["elements"][0]["text"]
        assert len(text) <= SECTION_TEXT
    assert "at least 3000 events" in blocks[0]["text"]["text"]
    assert "and 68 more services" in blocks[0]["text"]["text"]
