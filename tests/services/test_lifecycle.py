"""A request's and a grant's life besides the decision, on SQLite and Postgres: reminders,
Cancel by the requester, Revoke by an approver or an admin, the lifetime cap."""

from datetime import timedelta

import pytest

from accessbot.models import Grant, GrantStatus, RequestStatus
from accessbot.services import lifecycle, requests
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized
from accessbot.services.outbox import Kind
from accessbot.services.runner import AccessRunner
from tests.factories import (
    APPROVER,
    IAM_USER,
    OTHER_APPROVER,
    REQUESTER,
    STRANGER,
    active_grant,
    approve,
    ask_for_more_time,
    audit_trail,
    create_request,
    load_grant,
    load_request,
    make_catalog,
)
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider, FakeTimers

ADMIN = "U0SECLEAD"
SRE = "U0SRE"  # in the user group S0SRE


class FakeGroups:
    def __init__(self, members: dict[str, set[str]]):
        self._members = members

    def members(self, group_id: str) -> frozenset[str]:
        return frozenset(self._members.get(group_id, ()))


GROUPS = FakeGroups({"S0SRE": {SRE}, "S0SECURITY": {"U0SECMATE"}})


@pytest.fixture
def catalog():
    return make_catalog({"prod-admins": {"approvers": ["U0BOB", "U0DAVE", "S0SRE"],
                                         "max_total_duration": "5h"}},
                        admins=[ADMIN, "S0SECURITY"])


@pytest.fixture
def outbox(sessions, catalog, clock):
    return Mailroom(sessions, catalog, clock)


@pytest.fixture
def runner(sessions, catalog, clock):
    return AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory({REQUESTER: IAM_USER}),
                        FakeProfiles(), FakeTimers(), clock=clock, owner="runner-1",
                        groups=GROUPS)


def step(sessions, operation, *args):
    with sessions() as session, session.begin():
        return operation(session, *args)


def announced(sessions, catalog, clock, runner, outbox) -> int:
    """A pending request whose copies and waiting DM Slack has."""
    request_id = create_request(sessions, catalog, clock())
    assert runner.announce(request_id)
    outbox.deliver()
    return request_id


# -- Cancel ------------------------------------------------------------------------------

def test_the_requester_cancels_and_every_copy_and_the_waiting_dm_say_so(
        sessions, catalog, clock, runner, outbox):
    request_id = announced(sessions, catalog, clock, runner, outbox)
    [waiting] = outbox.client.posted(REQUESTER)
    assert "accessbot.cancel_request" in str(waiting["blocks"])
    clock.advance(minutes=3)

    step(sessions, lifecycle.cancel_request, request_id, REQUESTER, clock())
    outbox.deliver()

    request = load_request(sessions, request_id)
    assert (request.status, request.decided_by, request.decided_at) == (
        RequestStatus.CANCELLED, REQUESTER, clock())
    updated = outbox.client.updated()
    assert len(updated) == len(outbox.owed(Kind.REQUEST_COPY)) + 1  # and the waiting DM
    assert all("Cancelled" in str(u["blocks"]) for u in updated)
    assert not any("accessbot.approve" in str(u["blocks"]) or "accessbot.cancel_request"
                   in str(u["blocks"]) for u in updated)
    assert (REQUESTER, "cancelled") in audit_trail(sessions, request_id=request_id)


def test_only_the_requester_cancels_and_only_while_pending(sessions, catalog, clock, runner,
                                                           outbox):
    request_id = announced(sessions, catalog, clock, runner, outbox)
    for someone_else in (APPROVER, STRANGER):
        with pytest.raises(NotAuthorized):
            step(sessions, lifecycle.cancel_request, request_id, someone_else, clock())
    approve(sessions, catalog, request_id, clock())

    with pytest.raises(Conflict, match="already approved by <@U0BOB>"):
        step(sessions, lifecycle.cancel_request, request_id, REQUESTER, clock())
    assert load_request(sessions, request_id).status is RequestStatus.APPROVED


def test_a_cancelled_request_cannot_be_approved_or_cancelled_again(sessions, catalog, clock,
                                                                    runner, outbox):
    request_id = announced(sessions, catalog, clock, runner, outbox)
    step(sessions, lifecycle.cancel_request, request_id, REQUESTER, clock())

    with pytest.raises(Conflict, match="cancelled by <@U0ALICE>"):
        approve(sessions, catalog, request_id, clock())
    with pytest.raises(Conflict, match="cancelled"):
        step(sessions, lifecycle.cancel_request, request_id, REQUESTER, clock())
    assert load_request(sessions, request_id).status is RequestStatus.CANCELLED


def test_a_waiting_dm_posted_after_the_cancel_is_updated_at_once(sessions, catalog, clock,
                                                                   runner):
    request_id = create_request(sessions, catalog, clock())
    runner.announce(request_id)
    step(sessions, lifecycle.cancel_request, request_id, REQUESTER, clock())
    mail = Mailroom(sessions, catalog, clock)

    mail.deliver()  # the waiting DM goes out after the cancel: its update follows it

    [update] = [u for u in mail.client.updated() if u["channel"] == "D0ALICE"]
    assert "Cancelled" in str(update["blocks"]) and "cancel_request" not in str(update["blocks"])


# -- Revoke by others -------------------------------------------------------------------------

def live(sessions, catalog, clock, runner, outbox) -> int:
    request_id = announced(sessions, catalog, clock, runner, outbox)
    grant = approve(sessions, catalog, request_id, clock())
    assert runner.apply_grant(grant) is not None
    outbox.deliver()
    return grant


@pytest.mark.parametrize("revoker", [APPROVER, SRE, ADMIN, "U0SECMATE"],
                         ids=["approver", "approver-by-group", "admin", "admin-by-group"])
def test_an_approver_or_an_admin_revokes_and_the_holder_hears_who_and_why(
        sessions, catalog, clock, runner, outbox, revoker):
    grant_id = live(sessions, catalog, clock, runner, outbox)
    assert any("accessbot.revoke_grant" in str(u["blocks"]) for u in outbox.client.updated()
               if u["channel"] == "C0APPROVALS")
    clock.advance(minutes=10)

    step(sessions, lifecycle.revoke_by, catalog, GROUPS, grant_id, revoker,
         "  incident   over ", clock())
    grant = load_grant(sessions, grant_id)
    assert (grant.expires_at, grant.revoked_by, grant.revoke_reason) == (
        clock(), revoker, "incident over")
    assert runner.revoke_grant(grant_id) is not None
    outbox.deliver()

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.REVOKED
    ended = outbox.client.posted(REQUESTER)[-1]
    assert f"revoked by <@{revoker}>" in ended["text"] and "incident over" in ended["text"]
    copies = [u for u in outbox.client.updated() if u["channel"] != "D0ALICE"]
    assert copies and all(f"Access revoked by <@{revoker}>" in str(u["blocks"])
                          and "revoke_grant" not in str(u["blocks"]) for u in copies[-3:])
    assert (revoker, "revoked_by_other") in audit_trail(sessions, grant_id=grant_id)


@pytest.mark.parametrize("who, error", [(REQUESTER, "I'm done"), (STRANGER, "Only the approvers")])
def test_the_holder_and_strangers_cannot_revoke_through_the_button(
        sessions, catalog, clock, runner, outbox, who, error):
    grant_id = live(sessions, catalog, clock, runner, outbox)

    with pytest.raises(NotAuthorized, match=error):
        step(sessions, lifecycle.revoke_by, catalog, GROUPS, grant_id, who, None, clock())
    assert load_grant(sessions, grant_id).revoked_by is None


def test_a_grant_is_revoked_once(sessions, catalog, clock, runner, outbox):
    grant_id = live(sessions, catalog, clock, runner, outbox)
    step(sessions, lifecycle.revoke_by, catalog, GROUPS, grant_id, APPROVER, None, clock())

    with pytest.raises(Conflict, match="already ended"):
        step(sessions, lifecycle.revoke_by, catalog, GROUPS, grant_id, ADMIN, None, clock())
    assert load_grant(sessions, grant_id).revoked_by == APPROVER


def test_without_user_groups_a_group_member_is_refused(sessions, catalog, clock, runner,
                                                        outbox):
    grant_id = live(sessions, catalog, clock, runner, outbox)
    with pytest.raises(NotAuthorized):
        step(sessions, lifecycle.revoke_by, catalog, None, grant_id, SRE, None, clock())


# -- reminders ----------------------------------------------------------------------------

def reminded(outbox) -> list[tuple[int, str, list[str]]]:
    return [(r["number"], r["destination"], r["approvers"])
            for r in outbox.owed(Kind.REQUEST_REMINDER)]


def test_silent_approvers_are_reminded_at_doubling_intervals_three_times(
        sessions, catalog, clock, runner, outbox):
    request_id = announced(sessions, catalog, clock, runner, outbox)
    start = clock()
    moments = []
    for minutes in range(0, 24 * 60, 5):  # every sweep of a day, five minutes apart
        clock.now = start + timedelta(minutes=minutes)
        if runner.sweep().reminded:
            moments.append(minutes)

    assert moments == [15, 45, 105]  # remind_after, then 30m and 60m later
    per_reminder = [(n, d, a) for n, d, a in reminded(outbox)]
    # every approver has their own copy (a user group's members too): a DM each
    assert per_reminder[:3] == [(1, "U0BOB", ["U0BOB"]), (1, "U0DAVE", ["U0DAVE"]),
                                (1, SRE, [SRE])]
    assert len(per_reminder) == 9
    outbox.deliver()
    assert [p for p in outbox.client.posted("C0APPROVALS") if "reminder" in p["text"]] == []
    assert load_request(sessions, request_id).reminders_sent == 3


def test_no_reminder_after_a_decision(sessions, catalog, clock, runner, outbox):
    request_id = announced(sessions, catalog, clock, runner, outbox)
    clock.advance(minutes=16)
    requests_due = runner.sweep().reminded
    assert requests_due == [request_id]
    clock.advance(minutes=1)
    outbox.client.calls.clear()
    approve(sessions, catalog, request_id, clock())  # the first reminder is still unsent

    clock.advance(hours=3)
    assert runner.sweep().reminded == []
    outbox.deliver()
    assert not [p for p in outbox.client.posted() if "reminder" in p.get("text", "")]


def test_remind_after_is_the_resources(sessions, clock, runner):
    catalog = make_catalog({"prod-admins": {"remind_after": "2m"}})
    request_id = create_request(sessions, catalog, clock())
    with sessions() as session, session.begin():
        lifecycle.schedule_reminders(session, requests.get_request(session, request_id),
                                     catalog.get("prod-admins"), clock())
    assert load_request(sessions, request_id).next_reminder_at == clock() + timedelta(minutes=2)
    resource = catalog.get("prod-admins")
    assert lifecycle.next_reminder(resource, 1, clock()) == clock() + timedelta(minutes=4)
    assert lifecycle.next_reminder(resource, 2, clock()) == clock() + timedelta(minutes=8)
    assert lifecycle.next_reminder(resource, 3, clock()) is None


# -- the lifetime cap --------------------------------------------------------------------

def test_an_extension_past_the_lifetime_cap_is_refused_with_the_time_left(sessions, catalog,
                                                                           clock):
    grant_id = active_grant(sessions, catalog, clock())  # 2h of at most 5h in all

    with pytest.raises(InvalidInput, match="prod-admins may last at most 5h in all; this "
                                           "grant has 3h left of it"):
        ask_for_more_time(sessions, catalog, grant_id, clock(), timedelta(hours=4))

    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), timedelta(hours=3))
    assert load_request(sessions, request_id).status is RequestStatus.PENDING


def test_the_lifetime_cap_is_checked_again_at_approval(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), timedelta(hours=3))
    tighter = make_catalog({"prod-admins": {"max_total_duration": "4h"}})
    clock.advance(minutes=90)  # max_duration (4h from the approval) would allow 14:00

    with pytest.raises(Conflict, match="at most 4h in all; this grant has 2h left"):
        approve(sessions, tighter, request_id, clock())
    assert load_request(sessions, request_id).status is RequestStatus.PENDING
    assert load_grant(sessions, grant_id).expires_at == clock() + timedelta(minutes=30)


def test_within_the_cap_an_extension_is_approved(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), timedelta(hours=3))
    start = clock()
    clock.advance(minutes=90)
    with sessions() as session, session.begin():
        grant = requests.approve(session, catalog, request_id, OTHER_APPROVER, clock())
        assert isinstance(grant, Grant)
    assert load_grant(sessions, grant_id).expires_at == start + timedelta(hours=5)
