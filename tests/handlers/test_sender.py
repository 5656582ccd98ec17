"""The sender over a real database (SQLite and Postgres) and a fake Slack client: retries,
permanent failures, coalesced updates, per-queue order, leases between replicas, pruning."""

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy
from sqlalchemy import select

from accessbot.handlers.delivery import Delivery
from accessbot.handlers.sender import Sender
from accessbot.models import Grant, GrantStatus, OutboxMessage, OutboxStatus, transaction
from accessbot.services import messages, outbox
from accessbot.services.outbox import Kind
from tests.factories import active_grant
from tests.fakes.outbox import FakeWebClient, Mailroom


@pytest.fixture
def mail(sessions, catalog, clock):
    return Mailroom(sessions, catalog, clock)


def owe_reply(sessions, clock, user: str, text: str) -> None:
    with transaction(sessions) as session:
        messages.reply(session, user, None, text, clock())


def rows(sessions) -> list[OutboxMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_message_is_sent_once_and_marked(sessions, clock, mail):
    owe_reply(sessions, clock, "U0ALICE", "hello")

    assert mail.deliver() == 1
    assert mail.deliver() == 0

    assert mail.client.posted() == [{"channel": "U0ALICE", "text": "hello"}]
    [row] = rows(sessions)
    assert (row.status, row.attempts, row.channel, row.lease_owner) == (
        OutboxStatus.SENT, 1, "D0ALICE", None)


@pytest.mark.parametrize("error, status, headers, wait", [
    ("ratelimited", 429, {"Retry-After": "30"}, 30),
    ("internal_error", 500, {}, 1),
    ("service_unavailable", 503, {}, 1),
])
def test_transient_errors_back_off_and_retry(sessions, clock, mail, error, status, headers,
                                            wait):
    owe_reply(sessions, clock, "U0ALICE", "hello")
    mail.client.fail_next("chat.postMessage", error, status=status, headers=headers)

    assert mail.deliver() == 0
    [row] = rows(sessions)
    assert row.status is OutboxStatus.PENDING and error in row.last_error
    assert wait * 0.8 <= (row.next_attempt_at - clock()).total_seconds() <= wait * 1.2 + 0.01
    clock.now = row.next_attempt_at - timedelta(milliseconds=1)
    assert mail.deliver() == 0  # not before its time

    clock.now = row.next_attempt_at
    assert mail.deliver() == 1
    assert [r.status for r in rows(sessions)] == [OutboxStatus.SENT]


def test_a_timeout_is_transient(sessions, catalog, clock):
    class Hanging(FakeWebClient):
        def chat_postMessage(self, **args):
            raise TimeoutError("The read operation timed out")

    sender = Sender(sessions, Delivery(Hanging(), catalog), clock=clock, owner="s")
    owe_reply(sessions, clock, "U0ALICE", "hello")

    assert sender.drain() == 0
    [row] = rows(sessions)
    assert row.status is OutboxStatus.PENDING and "timed out" in row.last_error


def test_a_permanent_error_fails_the_row_and_tells_the_admins_once(sessions, clock, mail):
    owe_reply(sessions, clock, "U0GONE", "hello")
    mail.client.fail_next("chat.postMessage", "channel_not_found")

    mail.deliver()

    failed, alert = rows(sessions)
    assert (failed.status, failed.last_error) == (OutboxStatus.FAILED,
                                                  "Slack said channel_not_found")
    assert (alert.kind, alert.status) == (Kind.ADMIN_ALERT.value, OutboxStatus.SENT)
    [told] = mail.client.posted("C0SECURITY")
    assert "U0GONE" in told["text"] and "channel_not_found" in told["text"]
    assert mail.deliver() == 0


def test_an_admin_alert_that_fails_for_good_raises_no_alert_about_itself(sessions, clock,
                                                                          mail):
    with transaction(sessions) as session:
        messages.admin_alert(session, "something", clock())
    mail.client.fail_next("chat.postMessage", "not_in_channel")

    mail.deliver()

    assert [(r.kind, r.status) for r in rows(sessions)] == [
        (Kind.ADMIN_ALERT.value, OutboxStatus.FAILED)]


def test_a_transient_error_for_a_day_becomes_a_failure(sessions, clock, mail):
    owe_reply(sessions, clock, "U0ALICE", "hello")
    mail.client.down = True
    mail.deliver()
    clock.advance(hours=25)
    mail.deliver()

    first, *_ = rows(sessions)
    assert first.status is OutboxStatus.FAILED and "gave up" in first.last_error


def test_messages_to_one_person_keep_their_order(sessions, clock, mail):
    for text in ("one", "two", "three"):
        owe_reply(sessions, clock, "U0ALICE", text)
    owe_reply(sessions, clock, "U0BOB", "other")
    mail.client.fail_next("chat.postMessage", "internal_error", status=500, channel="U0ALICE")

    mail.deliver()
    assert [a["text"] for a in mail.client.posted()] == ["other"]  # Alice's wait for "one"
    clock.advance(seconds=2)
    mail.deliver()

    assert [a["text"] for a in mail.client.posted("U0ALICE")] == ["one", "two", "three"]


def test_a_queue_waits_while_its_first_row_is_leased_by_another_sender(sessions, clock, mail):
    for text in ("one", "two"):
        owe_reply(sessions, clock, "U0ALICE", text)
    owe_reply(sessions, clock, "U0BOB", "other")
    with transaction(sessions) as session:
        [leased] = outbox.claim(session, "replica-2", clock(), 1)  # Alice's "one", then died

    assert mail.deliver() == 1
    assert [a["text"] for a in mail.client.posted()] == ["other"]  # not Alice's "two"
    clock.advance(seconds=outbox.LEASE.total_seconds() + 1)
    assert mail.deliver() == 2
    assert [a["text"] for a in mail.client.posted("U0ALICE")] == ["one", "two"]
    assert leased.queue == rows(sessions)[0].queue


def test_a_claim_reads_the_pending_rows_once_whatever_the_planner_knows(sessions, clock):
    """The first due row of each queue, found in one pass: a plan that probes the pending
    rows again for each pending row (as NOT EXISTS did on Postgres before its statistics
    were fresh) makes every claim in a backlog quadratic."""
    with transaction(sessions) as session:
        for n in range(300):
            messages.reply(session, f"U0USER{n % 30}", None, f"message {n}", clock())
    with sessions() as session:
        statement = outbox._due_heads(clock(), 8).compile(
            session.get_bind(), compile_kwargs={"literal_binds": True})
        postgres = session.get_bind().dialect.name == "postgresql"
        explain = sqlalchemy.text(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ")
                                  + str(statement))
        plan = "\n".join(str(row[-1]) for row in session.execute(explain))
    scans = [line for line in plan.splitlines() if " on outbox" in line or
             re.search(r"SCAN outbox|SEARCH outbox", line)]
    assert len(scans) == 1, plan
    first_of_each_queue = {}
    for row in rows(sessions):
        first_of_each_queue.setdefault(row.queue, row.id)
    with transaction(sessions) as session:
        claimed = outbox.claim(session, "me", clock(), 100)
    assert [owed.id for owed in claimed] == sorted(first_of_each_queue.values())
    assert len(claimed) == 30


def test_updates_of_one_message_coalesce_and_the_last_state_wins(sessions, catalog, clock,
                                                                mail):
    grant_id = active_grant(sessions, catalog, clock())
    with transaction(sessions) as session:
        grant = session.get(Grant, grant_id)
        grant.dm_channel, grant.dm_ts = "D0ALICE", "1.1"
        for _ in range(3):
            messages.grant_dm_updated(session, grant, clock())

    mail.deliver()

    assert len(mail.client.updated()) == 1
    assert [r.status for r in rows(sessions)] == [
        OutboxStatus.SENT, OutboxStatus.SUPERSEDED, OutboxStatus.SUPERSEDED]


def test_two_senders_never_send_the_same_row(sessions, catalog, clock):
    for n in range(40):
        owe_reply(sessions, clock, f"U0USER{n % 10}", f"message {n}")
    client = FakeWebClient()
    senders = [Sender(sessions, Delivery(client, catalog), clock=clock, owner=f"replica-{i}")
               for i in range(3)]
    threads = [threading.Thread(target=s.drain) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    texts = [a["text"] for a in client.posted()]
    assert sorted(texts) == sorted(f"message {n}" for n in range(40))
    for n in range(10):  # and each person's in order
        mine = [t for t in texts if int(t.split()[1]) % 10 == n]
        assert mine == sorted(mine, key=lambda t: int(t.split()[1]))


def test_a_crashed_senders_lease_runs_out_and_the_row_is_sent(sessions, clock, mail):
    owe_reply(sessions, clock, "U0ALICE", "hello")
    with transaction(sessions) as session:
        assert outbox.claim(session, "crashed", clock(), 10)  # then it died

    assert mail.deliver() == 0
    clock.advance(seconds=outbox.LEASE.total_seconds() + 1)
    assert mail.deliver() == 1


def test_the_background_sender_delivers_when_woken(sessions, catalog, clock):
    client = FakeWebClient()
    sender = Sender(sessions, Delivery(client, catalog), owner="live").start()
    try:
        owe_reply(sessions, clock, "U0ALICE", "hello")
        for _ in range(200):
            if client.posted():
                break
            threading.Event().wait(0.01)
        assert client.posted() == [{"channel": "U0ALICE", "text": "hello"}]
    finally:
        sender.stop()


def test_prune_forgets_old_delivered_rows(sessions, clock, mail):
    owe_reply(sessions, clock, "U0ALICE", "hello")
    mail.deliver()
    with transaction(sessions) as session:
        assert outbox.prune(session, clock() + timedelta(days=6), timedelta(days=7)) == 0
        assert outbox.prune(session, clock() + timedelta(days=8), timedelta(days=7)) == 1
    assert rows(sessions) == []


def test_a_grant_dm_that_waited_until_the_grant_ended_is_not_sent(sessions, catalog, clock,
                                                                 mail):
    """Rendered when sent, a late "you have access" would read "ended": the ended DM
    behind it in the queue says that once."""
    grant_id = active_grant(sessions, catalog, clock())
    with transaction(sessions) as session:
        grant = session.get(Grant, grant_id)
        messages.grant_active(session, grant, clock())
        grant.status = GrantStatus.REVOKED
        grant.revoked_at = clock()
        messages.grant_ended(session, grant, clock())

    mail.deliver()

    [ended] = mail.client.posted()
    assert "ended" in ended["text"]
    assert mail.client.updated() == []  # no grant DM to update


def test_a_file_goes_through_slacks_three_upload_calls(catalog):
    """files.uploadV2 over HTTP: getUploadURLExternal, the upload, completeUploadExternal."""
    from slack_sdk import WebClient

    from accessbot.handlers.delivery import UPLOAD, SlackCall
    from tests.fakes.slack_api import FakeSlack

    with FakeSlack() as slack:
        delivery = Delivery(WebClient(token="xoxb-test", base_url=slack.api_url), catalog)
        sent = delivery.send(SlackCall(UPLOAD, {
            "channel": "C0SECURITY", "initial_comment": "*3 findings*", "title": "Stale",
            "filename": "stale.csv", "content": "iam_user,finding\nsvc,Access key unused\n"}))
        assert sent.channel == "C0SECURITY"
        [message] = slack.messages("C0SECURITY")
        assert message["text"] == "*3 findings*"
        assert message["files"][0]["content"] == "iam_user,finding\nsvc,Access key unused\n"
        assert [c.method for c in slack.calls()] == ["files.getUploadURLExternal",
                                                     "files.completeUploadExternal"]


def test_an_answer_goes_to_a_response_url_only_if_it_is_slacks(sessions, catalog, clock):
    """Over HTTP: an answer through the fake Slack's own response_url is posted there; one
    whose response_url is another server's (a payload cannot name an internal address for
    the worker to call) goes to the person as a DM, and that server hears nothing."""
    from slack_sdk import WebClient

    from tests.fakes.slack_api import FakeSlack

    with FakeSlack() as slack, FakeSlack() as elsewhere:
        sender = Sender(sessions, Delivery(WebClient(token="xoxb-test", base_url=slack.api_url),
                                           catalog), clock=clock, owner="s")
        with transaction(sessions) as session:
            messages.reply(session, "U0ALICE", slack.response_url("ours"), "through Slack",
                           clock())
            messages.reply(session, "U0ALICE", elsewhere.response_url("theirs"), "as a DM",
                           clock())

        assert sender.drain() == 2

        [answered] = slack.calls("response_url")
        assert answered.args["text"] == "through Slack"
        assert [m["text"] for m in slack.messages("U0ALICE")] == ["as a DM"]
        assert elsewhere.calls() == []
        assert [r.status for r in rows(sessions)] == [OutboxStatus.SENT] * 2


def test_an_answer_whose_response_url_slack_refuses_for_good_goes_as_a_dm(sessions, catalog,
                                                                            clock):
    """A response_url answers five times at most, for 30 minutes: an answer owed after
    that (a worker down for an hour) reaches the person as a DM. A refusal that may pass
    (Slack busy) is retried through the response_url."""
    from slack_sdk import WebClient

    from tests.fakes.slack_api import FakeSlack

    with FakeSlack() as slack:
        sender = Sender(sessions, Delivery(WebClient(token="xoxb-test", base_url=slack.api_url),
                                           catalog), clock=clock, owner="s")
        with transaction(sessions) as session:
            messages.reply(session, "U0ALICE", slack.response_url("late"), "your answer",
                           clock())
        slack.fail("response_url", "expired_url")

        assert sender.drain() == 1

        assert len(slack.calls("response_url")) == 1
        assert [m["text"] for m in slack.messages("U0ALICE")] == ["your answer"]
        [row] = rows(sessions)
        assert (row.status, row.channel) == (OutboxStatus.SENT, "D0ALICE")


@pytest.mark.parametrize("url, api, allowed", [
    ("https://hooks.slack.com/actions/T0/1/x", "https://slack.com/api/", True),
    ("https://hooks.slack-gov.com/actions/T0/1/x", "https://slack-gov.com/api/", True),
    ("http://127.0.0.1:8080/response/1", "http://127.0.0.1:8080/api/", True),
    ("http://hooks.slack.com/actions/T0/1/x", "https://slack.com/api/", False),
    ("https://hooks.slack.com:8443/actions/T0/1/x", "https://slack.com/api/", False),
    ("https://hooks.slack.com.evil.example/x", "https://slack.com/api/", False),
    ("https://hooks.slack.com@evil.example/x", "https://slack.com/api/", False),
    ("https://user@hooks.slack.com/x", "https://slack.com/api/", False),
    ("https://evil.example/?https://hooks.slack.com/", "https://slack.com/api/", False),
    ("http://169.254.169.254/latest/meta-data/", "https://slack.com/api/", False),
    ("http://127.0.0.1:9090/response/1", "http://127.0.0.1:8080/api/", False),
    ("file:///etc/passwd", "https://slack.com/api/", False),
    ("https://[::1/x", "https://slack.com/api/", False),
    ("not a url", "https://slack.com/api/", False),
])
def test_slack_hook_admits_only_slacks_own_addresses(url, api, allowed):
    from accessbot.handlers.delivery import slack_hook

    assert slack_hook(url, api) is allowed
