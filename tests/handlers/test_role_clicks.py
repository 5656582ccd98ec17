"""A signed click on "Cap at 1h", from Slack's request to the role in IAM: the listener
records it in the inbox and acknowledges; the worker re-authorises the clicker against the
database, so a non-owner is refused and the owner's click caps the role."""

import pytest

from accessbot.handlers.ids import ActionId
from accessbot.handlers.tasks import Task, encode_args
from accessbot.handlers.work import Work, WorkDeps
from accessbot.models import CredentialFinding, FindingStatus, InboxStatus, transaction
from accessbot.services import inbox
from accessbot.services.hygiene_runner import HygieneRunner
from accessbot.services.outbox import Kind
from tests.fakes.hygiene import FakeAccount, FakeOwners
from tests.fakes.outbox import Mailroom
from tests.fakes.roles import FakeRoles, role
from tests.handlers.slack_requests import RESPONSE_URL, click, dispatch, make_app
from tests.handlers.test_work import claim, status_of


@pytest.fixture
def roles(clock):
    return FakeRoles([role("ci", clock(), used=clock(), session=43200,
                           tags={"slack-user-id": "U0ALICE"})])


@pytest.fixture
def finding_id(sessions, catalog, clock, roles) -> int:
    runner = HygieneRunner(sessions, catalog, FakeAccount(), FakeOwners(), clock=clock,
                           roles=roles)
    runner.stale_credentials()
    with sessions() as session:
        [row] = session.query(CredentialFinding).all()
        assert row.owner == "U0ALICE"
        return row.id


@pytest.fixture
def app(sessions, catalog, clock):
    def handoff(task, *args) -> None:  # the web process's hand-off: one inbox row
        with transaction(sessions) as session:
            inbox.add(session, task.value, encode_args(args), clock())
    return make_app(catalog, handoff)


@pytest.fixture
def work(sessions, catalog, clock, roles):
    hygiene = HygieneRunner(sessions, catalog, FakeAccount(), FakeOwners(), clock=clock,
                            roles=roles)
    return Work(WorkDeps(sessions, catalog, None, hygiene, None, clock,
                         lambda fn, *args: fn(*args), "worker-1"))


def _status(sessions, finding_id: int) -> FindingStatus:
    with sessions() as session:
        return session.get(CredentialFinding, finding_id).status


def test_a_click_from_someone_else_is_refused_by_the_worker(app, work, sessions, catalog,
                                                           clock, roles, finding_id):
    assert dispatch(app, click(ActionId.FINDING_CAP_SESSION, str(finding_id),
                               user="U0MALLORY")).status == 200
    [task] = claim(sessions, clock)
    assert task.task == Task.CAP_SESSION

    work.run(task)

    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert reply["user_id"] == "U0MALLORY" and reply["response_url"] == RESPONSE_URL
    assert "Only <@U0ALICE> can act on this finding" in reply["text"]
    assert roles.max_session("ci") == 43200
    assert _status(sessions, finding_id) is FindingStatus.OPEN
    assert status_of(sessions) == [InboxStatus.DONE]


def test_the_owners_click_is_handed_over_and_caps_the_role(app, work, sessions, catalog,
                                                          clock, roles, finding_id):
    assert dispatch(app, click(ActionId.FINDING_CAP_SESSION, str(finding_id),
                               user="U0ALICE")).status == 200

    work.run(claim(sessions, clock)[0])

    [reply] = Mailroom(sessions, catalog, clock).owed(Kind.REPLY)
    assert reply["text"] == "Done: role ci now allows sessions of up to 1h."
    assert roles.max_session("ci") == 3600
    assert _status(sessions, finding_id) is FindingStatus.RESOLVED
    assert status_of(sessions) == [InboxStatus.DONE]


def test_a_click_without_an_id_never_reaches_the_worker(app, sessions, clock):
    assert dispatch(app, click(ActionId.FINDING_CAP_SESSION, "ci")).status == 400
    assert claim(sessions, clock) == []
