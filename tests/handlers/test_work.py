"""Inbox tasks run by Work on a real database: done once however often started, the
decision's clock at the click, and an answer to the person whatever happens."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.handlers.tasks import ReplyTo, Task, encode_args
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import Grant, InboxStatus, InboxTask, RequestStatus, transaction
from accessbot.services import inbox
from accessbot.services.outbox import Kind
from accessbot.services.runner import AccessRunner
from tests.factories import APPROVER, create_request, load_grant, load_request
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider


@pytest.fixture
def aws_calls():
    return []


@pytest.fixture
def work(sessions, catalog, clock, aws_calls):
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory(), FakeProfiles(),
                          clock=clock, owner="w")
    return Work(WorkDeps(sessions, catalog, runner, None, None, clock,
                         lambda fn, *args: aws_calls.append((fn.__name__, args)), "worker-1"))


def record(sessions, clock, task: Task, *args) -> None:
    with transaction(sessions) as session:
        inbox.add(session, task.value, encode_args(args), clock())


def claim(sessions, clock, owner="worker-1"):
    with transaction(sessions) as session:
        return inbox.claim(session, owner, clock(), 10)


def status_of(sessions) -> list[InboxStatus]:
    with sessions() as session:
        return list(session.scalars(select(InboxTask.status).order_by(InboxTask.id)))


def test_an_approval_is_decided_at_the_click_however_late_it_runs(work, sessions, catalog,
                                                                  clock, aws_calls):
    request_id = create_request(sessions, catalog, clock())
    clicked = clock.advance(minutes=1)
    record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    clock.advance(seconds=5)  # the worker was busy

    [task] = claim(sessions, clock)
    work.run(task)

    request = load_request(sessions, request_id)
    assert (request.status, request.decided_at) == (RequestStatus.APPROVED, clicked)
    with sessions() as session:
        grant_id = session.scalar(select(Grant.id).where(Grant.request_id == request_id))
    assert load_grant(sessions, grant_id).starts_at == clicked
    assert aws_calls == [("apply_grant", (grant_id,))]  # AWS after the commit, elsewhere
    assert status_of(sessions) == [InboxStatus.DONE]


def test_a_task_started_again_after_its_lease_ran_out_decides_nothing_twice(
        work, sessions, catalog, clock, aws_calls):
    request_id = create_request(sessions, catalog, clock())
    record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    [first] = claim(sessions, clock)
    clock.advance(seconds=inbox.LEASE.total_seconds() + 1)
    [again] = claim(sessions, clock, owner="worker-2")  # the first looked dead

    work.run(first)  # the first worker was only slow: its task is no longer its own
    assert load_request(sessions, request_id).status is RequestStatus.PENDING
    assert aws_calls == []

    work.deps.owner = "worker-2"
    work.run(again)
    assert load_request(sessions, request_id).status is RequestStatus.APPROVED
    assert len(aws_calls) == 1
    assert status_of(sessions) == [InboxStatus.DONE]


def test_a_refusal_is_answered_and_the_task_done(work, sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())
    record(sessions, clock, Task.APPROVE, str(request_id), "U0MALLORY",
           ReplyTo("U0MALLORY", "https://hooks.slack.test/r/1"))

    work.run(claim(sessions, clock)[0])

    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert reply["response_url"] == "https://hooks.slack.test/r/1"
    assert "Only the approvers" in reply["text"]
    assert status_of(sessions) == [InboxStatus.DONE]


def test_a_task_that_breaks_fails_and_the_person_hears(work, sessions, catalog, clock):
    def broken(*args):
        raise RuntimeError("a bug")

    work.approve = broken
    record(sessions, clock, Task.APPROVE, "1", APPROVER, ReplyTo(APPROVER))

    work.run(claim(sessions, clock)[0])

    assert status_of(sessions) == [InboxStatus.FAILED]
    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert reply["user_id"] == APPROVER and "went wrong" in reply["text"]


def test_a_database_error_is_retried_then_answered(work, sessions, catalog, clock):
    from sqlalchemy.exc import OperationalError

    def database_away(*args):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    work.approve = database_away
    record(sessions, clock, Task.APPROVE, "1", APPROVER, ReplyTo(APPROVER))
    for _ in range(inbox.MAX_ATTEMPTS):
        [task] = claim(sessions, clock)
        work.run(task)
        clock.advance(minutes=5)

    assert status_of(sessions) == [InboxStatus.FAILED]
    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert "nothing was changed" in reply["text"]
    assert claim(sessions, clock) == []


def test_task_arguments_survive_the_inbox(catalog):
    from accessbot.handlers.tasks import decode_args
    from accessbot.services.commands import Draft, ExtensionDraft

    draft = Draft(catalog.resources["prod-admins"], timedelta(minutes=90), "deploy <hotfix>")
    args = ("U0ALICE", draft, ExtensionDraft(7, None, "more"), ReplyTo("U0ALICE", None),
            {"type": "modal"}, None)
    assert decode_args(encode_args(args), catalog) == args


# -- a burst of Approve clicks: claimed together, decided in one transaction -------------

def test_waiting_approve_clicks_are_claimed_together_and_other_tasks_singly(
        work, sessions, catalog, clock):
    from tests.factories import someone

    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(3)]
    record(sessions, clock, Task.END_GRANT, "1", APPROVER, ReplyTo(APPROVER))
    for request_id in ids:
        record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    record(sessions, clock, Task.DENY, "1", APPROVER, None, ReplyTo(APPROVER))

    units = work.claim(3)

    assert [[t.task for t in unit] for unit in units] == [
        ["approve"] * 3, ["end_grant"], ["deny"]]
    assert work.claim(3) == []  # all leased


def test_a_batch_decides_every_click_and_answers_the_refused(work, sessions, catalog, clock,
                                                             aws_calls):
    from tests.factories import someone

    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(3)]
    clicked = clock.advance(seconds=1)
    for request_id in ids:
        record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    record(sessions, clock, Task.APPROVE, str(ids[0]), "U0DAVE", ReplyTo("U0DAVE", "https://r/2"))
    record(sessions, clock, Task.APPROVE, "not-an-id", APPROVER, ReplyTo(APPROVER, "https://r/3"))
    clock.advance(seconds=5)

    [batch] = work.claim(1)
    work.run_all(batch)

    for request_id in ids:
        request = load_request(sessions, request_id)
        assert (request.status, request.decided_at) == (RequestStatus.APPROVED, clicked)
    # the grants handed to the AWS pool once, together
    [(handed, (granted,))] = aws_calls
    assert handed == "_carry_out_all"
    assert [(request_id, grant.request_id) for request_id, grant in granted] == \
        [(request_id, request_id) for request_id in ids]
    replies = {r["response_url"]: r["text"] for r in
               Mailroom(sessions, catalog, clock).owed(Kind.REPLY)}
    assert replies == {
        "https://r/2": f":information_source: Request #{ids[0]} was already approved by "
                       f"<@{APPROVER}>.",
        "https://r/3": ":warning: That button is not valid any more."}
    assert status_of(sessions) == [InboxStatus.DONE] * 5


def test_a_batch_that_cannot_be_decided_together_is_decided_one_by_one(
        work, sessions, catalog, clock, aws_calls, monkeypatch):
    from accessbot.services import requests as request_ops
    from tests.factories import someone

    together = request_ops.approve_many

    def contended(session, catalog, approvals, groups=None):  # another process granted one
        if len(approvals) > 1:
            raise request_ops.Contended()
        return together(session, catalog, approvals, groups)

    monkeypatch.setattr(request_ops, "approve_many", contended)
    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(2)]
    for request_id in ids:
        record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))

    [batch] = work.claim(1)
    work.run_all(batch)

    assert [load_request(sessions, i).status for i in ids] == [RequestStatus.APPROVED] * 2
    assert [name for name, _ in aws_calls] == ["apply_grant"] * 2  # each on its own
    assert status_of(sessions) == [InboxStatus.DONE] * 2


def test_a_batchs_grants_are_each_handed_to_the_aws_pool_from_there(
        work, sessions, catalog, clock, aws_calls):
    """The batch's thread hands its grants over in one call (above); on the AWS pool,
    that call hands each on: a new grant applied, an extension's grant extended."""
    from tests.factories import someone

    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(2)]
    for request_id in ids:
        record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    [batch] = work.claim(1)
    work.run_all(batch)
    [(_, (granted,))] = aws_calls
    aws_calls.clear()
    new, extended = granted
    extension = (ids[1] + 100, extended[1])  # a request that extended an earlier grant

    work._carry_out_all([new, extension])

    assert aws_calls == [("apply_grant", (new[1].id,)), ("extend_grant", (extended[1].id,))]


def test_a_batchs_grants_are_carried_out_in_turn_when_the_aws_pool_is_stopping(
        sessions, catalog, clock):
    """The worker drains: its AWS pool runs what was handed to it, and takes nothing new."""
    from types import SimpleNamespace

    from accessbot.models import Grant

    done: list[tuple[str, int]] = []

    def stopping(_fn, *_args):
        raise RuntimeError("cannot schedule new futures after shutdown")

    runner = SimpleNamespace(apply_grant=lambda i: done.append(("apply_grant", i)),
                             extend_grant=lambda i: done.append(("extend_grant", i)))
    work = Work(WorkDeps(sessions, catalog, runner, None, None, clock, stopping, "worker-1"))

    work._carry_out_all([(7, Grant(id=70, request_id=7)), (9, Grant(id=50, request_id=5))])

    assert done == [("apply_grant", 70), ("extend_grant", 50)]


def test_a_single_claim_leaves_approve_clicks_to_the_next_batch(sessions, clock):
    # a click recorded between the batch's claim and the singles' claim waits for the next
    # batch, instead of a thread and a transaction of its own
    record(sessions, clock, Task.APPROVE, "1", APPROVER, ReplyTo(APPROVER))
    record(sessions, clock, Task.END_GRANT, "1", APPROVER, ReplyTo(APPROVER))
    with transaction(sessions) as session:
        claimed = inbox.claim(session, "worker-1", clock(), 10, other_than=Task.APPROVE)
    assert [t.task for t in claimed] == ["end_grant"]
    with transaction(sessions) as session:
        assert [t.task for t in inbox.claim(session, "worker-1", clock(), 10)] == ["approve"]


def test_one_batch_of_clicks_at_a_time_and_the_aws_pool_and_sender_wait_for_it(
        work, sessions, catalog, clock, aws_calls):
    import threading

    from tests.factories import someone

    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(3)]
    record(sessions, clock, Task.APPROVE, str(ids[0]), APPROVER, ReplyTo(APPROVER))
    [first] = work.claim(4)
    held = threading.Thread(target=work.decisions.hold)  # a sender's claim, an AWS task
    held.start()
    record(sessions, clock, Task.APPROVE, str(ids[1]), APPROVER, ReplyTo(APPROVER))
    record(sessions, clock, Task.APPROVE, str(ids[2]), APPROVER, ReplyTo(APPROVER))
    record(sessions, clock, Task.END_GRANT, "1", APPROVER, ReplyTo(APPROVER))

    # while the first is decided, the clicks that came meanwhile wait: other tasks do not
    assert [[t.task for t in unit] for unit in work.claim(4)] == [["end_grant"]]
    work.run_all(first)
    held.join(0.2)
    assert held.is_alive()  # decided, but more clicks may be waiting: still held
    [second] = work.claim(4)
    assert [t.task for t in second] == ["approve"] * 2  # the rest, as one batch
    work.run_all(second)
    assert work.claim(4) == []  # nothing waits: the way is open again
    held.join(5)
    assert not held.is_alive()
    assert [load_request(sessions, i).status for i in ids] == [RequestStatus.APPROVED] * 3


def test_a_claim_that_did_not_look_for_clicks_keeps_the_aws_pool_waiting(
        work, sessions, catalog, clock, monkeypatch):
    """A claim made while a batch runs takes no clicks. When the batch ended before that
    claim did, the claim read "no clicks, no batch" and let the AWS pool and the sender go:
    in `make bench` (phase 4) the grants of the first batch then held up the decisions of
    the rest for 40-120 ms."""
    import threading

    from accessbot.services import inbox as inbox_ops
    from tests.factories import someone

    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(2)]
    record(sessions, clock, Task.APPROVE, str(ids[0]), APPROVER, ReplyTo(APPROVER))
    [first] = work.claim(4)
    record(sessions, clock, Task.APPROVE, str(ids[1]), APPROVER, ReplyTo(APPROVER))
    held = threading.Thread(target=work.decisions.hold)  # an AWS task, a sender's claim
    held.start()
    claim = inbox_ops.claim

    def batch_ends_meanwhile(session, owner, now, limit, task=None, **kwargs):
        work.run_all(first)  # on another thread, as this claim runs
        monkeypatch.setattr(inbox_ops, "claim", claim)
        return claim(session, owner, now, limit, task, **kwargs)

    monkeypatch.setattr(inbox_ops, "claim", batch_ends_meanwhile)
    assert work.claim(4) == []  # it did not look for clicks: one waits all the same

    assert load_request(sessions, ids[0]).status == RequestStatus.APPROVED
    held.join(0.2)
    assert held.is_alive()
    [second] = work.claim(4)
    assert [t.task for t in second] == ["approve"]
    work.run_all(second)
    assert work.claim(4) == []
    held.join(5)
    assert not held.is_alive()
    assert load_request(sessions, ids[1]).status == RequestStatus.APPROVED


def test_a_nudge_about_clicks_alone_waits_for_the_batch_being_decided(
        work, sessions, catalog, clock, monkeypatch):
    """The worker's claim loop as jobs/process.py wires it to the web process's nudges. In
    a burst on Postgres each small commit of the inbox writer woke it, for a claim that
    could take nothing while a batch was being decided; now only the batch's end claims
    the clicks that came meanwhile, and other tasks are claimed at once as before."""
    import threading

    from accessbot.services import claim_loop
    from accessbot.services import requests as request_ops
    from tests.factories import someone

    monkeypatch.setattr(claim_loop, "POLL", 60.0)  # only a wake claims: no poll meanwhile
    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(3)]
    for request_id in ids[:2]:  # two clicks, waiting when the loop starts: one batch
        record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    deciding, release = threading.Event(), threading.Event()
    approve_many = request_ops.approve_many

    def held(*args, **kwargs):
        deciding.set()
        assert release.wait(10)
        return approve_many(*args, **kwargs)

    monkeypatch.setattr(request_ops, "approve_many", held)
    claims: list[list[str]] = []

    def claim(slots: int):
        units = work.claim(slots)
        claims.append([t.task for unit in units for t in unit])
        return units

    loop = claim_loop.ClaimLoop("tasks", claim, work.run_all, 4, unblocks=work.unblocks).start()

    def nudge(*tasks: Task) -> None:  # jobs/process.py's
        if work.worth_a_claim(frozenset(tasks)):
            loop.wake()

    try:
        assert deciding.wait(10)
        assert claims == [["approve", "approve"]]  # the loop's first claim: one batch
        looked = len(claims)
        record(sessions, clock, Task.APPROVE, str(ids[2]), APPROVER, ReplyTo(APPROVER))
        for _ in range(5):  # the web process's commits while the batch is decided
            nudge(Task.APPROVE)
        time.sleep(0.3)
        assert len(claims) == looked  # no claim for them: none could take the click
        record(sessions, clock, Task.END_GRANT, "1", APPROVER, ReplyTo(APPROVER))
        nudge(Task.APPROVE, Task.END_GRANT)  # a commit with another task: claimed at once
        deadline = time.monotonic() + 5
        while "end_grant" not in sum(claims, []):
            assert time.monotonic() < deadline, "the other task was never claimed"
            time.sleep(0.01)
        assert "approve" not in claims[-1]
        release.set()  # the batch's end claims the click that waited
        deadline = time.monotonic() + 5
        while load_request(sessions, ids[2]).status != RequestStatus.APPROVED:
            assert time.monotonic() < deadline, "the click that waited was never decided"
            time.sleep(0.01)
    finally:
        release.set()
        loop.stop()
    assert [load_request(sessions, i).status for i in ids] == [RequestStatus.APPROVED] * 3


def test_the_aws_pool_and_the_sender_wait_for_decisions_only_so_long():
    import time

    from accessbot.handlers.work import DecisionsFirst

    decisions = DecisionsFirst(hold=1.0)  # long beside a loaded machine's hiccups
    started = time.monotonic()
    decisions.hold()  # nothing is being decided: at once
    assert time.monotonic() - started < 0.5
    decisions.claimed(True)
    started = time.monotonic()
    decisions.hold()  # a batch that never ends holds the rest up for `hold`, no longer
    assert 0.9 <= time.monotonic() - started < 5
    assert not decisions.may_decide()
    decisions.decided()
    assert decisions.may_decide()


def test_each_task_reports_how_long_after_its_acknowledgement_it_ended(work, sessions, catalog,
                                                                       clock):
    """accessbot_task_seconds: for approve, from the click to the decision's commit, in a
    batch or alone."""
    from accessbot.services import metrics
    from tests.factories import someone

    def observed(task: str) -> tuple[float, float]:
        [family] = metrics.TASK_SECONDS.collect()
        samples = {s.name: s.value for s in family.samples if s.labels.get("task") == task}
        return (samples.get("accessbot_task_seconds_count", 0.0),
                samples.get("accessbot_task_seconds_sum", 0.0))

    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(3)]
    for request_id in ids[:2]:
        record(sessions, clock, Task.APPROVE, str(request_id), APPROVER, ReplyTo(APPROVER))
    record(sessions, clock, Task.DENY, str(ids[2]), APPROVER, None, ReplyTo(APPROVER))
    approvals, denials = observed("approve"), observed("deny")
    clock.advance(seconds=2)  # the worker was busy

    for unit in work.claim(2):
        work.run_all(unit)

    count, total = observed("approve")
    assert (count - approvals[0], total - approvals[1]) == (2, pytest.approx(4.0))
    count, total = observed("deny")
    assert (count - denials[0], total - denials[1]) == (1, pytest.approx(2.0))
