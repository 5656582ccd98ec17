"""What a grant was used for, over real HTTP: a grant ends, the bot reads CloudTrail (a
local fake of LookupEvents, throttling at first) and the summary appears in the approval
message's thread and in the requester's DMs."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import select

from accessbot.handlers.ids import ActionId
from accessbot.models import AuditEvent, Grant, GrantStatus
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import db, dm_containing, read, request_via_command
from tests.fakes.cloudtrail import FakeCloudTrail
from tests.fakes.harness import SlackSender

pytestmark = pytest.mark.e2e


@pytest.fixture
def trail():
    with FakeCloudTrail() as fake:
        yield fake


def test_an_ended_grant_has_its_activity_told_in_the_approval_thread(
        start_bot, slack, aws, bot_env, tmp_path, trail):
    config = tmp_path / "activity.yaml"
    config.write_text(yaml.safe_dump({**E2E_CONFIG, "cloudtrail": {"delay": "1s"}}))
    sender = SlackSender(start_bot(ACCESSBOT_CONFIG=str(config),
                                   AWS_ENDPOINT_URL_CLOUDTRAIL=trail.url).url, slack.url)
    request_id = request_via_command(sender, slack, text="prod-admins 4s deploy hotfix 123")
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    soon = datetime.now(UTC) + timedelta(seconds=2)  # within the grant, applied by then
    trail.add("alice", soon, "s3.amazonaws.com", "PutObject", read_only=False,
              source_ip="203.0.113.9")
    trail.add("alice", soon, "ec2.amazonaws.com", "TerminateInstances", read_only=False,
              error_code="Client.UnauthorizedOperation")
    trail.add("alice", soon, "s3.amazonaws.com", "ListBuckets")
    trail.add("carol", soon, "s3.amazonaws.com", "DeleteBucket", read_only=False)
    trail.throttle(1)  # the first lookup is throttled, and retried
    dm_containing(slack, "U0ALICE", "access to prod-admins ended")

    def in_thread():
        return next((m for m in slack.messages("C0APPROVALS")
                     if m.get("thread_ts") and "CloudTrail" in read(m)), None)

    posted = slack.wait_for(in_thread, timeout=15)
    reply = read(posted)
    assert "What @U0ALICE did with prod-admins" in reply
    assert "3 events: s3 2, ec2 1" in reply
    assert "Changes (not read-only): 2" in reply and "s3:PutObject" in reply
    assert "Access denied: 1" in reply and "Client.UnauthorizedOperation" in reply
    assert "203.0.113.9" in reply and "DeleteBucket" not in reply  # carol's is not alice's
    assert "cloudtrailv2/home?region=us-east-1#/events?Username=alice" in json.dumps(
        posted["blocks"])
    dm = dm_containing(slack, "U0ALICE", "What you did with prod-admins")
    assert "3 events" in dm

    statuses = [c.status for c in trail.calls]
    assert statuses[0] == 400 and statuses[-1] == 200
    with db(bot_env)() as session:
        grant = session.scalars(select(Grant)).one()
        assert grant.status is GrantStatus.REVOKED and grant.activity_done_at is not None
        asked = trail.answered()[0].body
        assert asked["StartTime"] == pytest.approx(grant.granted_at.timestamp(), abs=1)
        assert asked["EndTime"] == pytest.approx(grant.revoked_at.timestamp(), abs=1)
        detail = session.scalar(select(AuditEvent.detail).where(
            AuditEvent.action == "activity_summarised"))
    assert json.loads(detail)["events"] == 3
