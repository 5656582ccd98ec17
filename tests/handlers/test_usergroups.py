"""SlackUserGroups against the fake Slack Web API: members read on first use, kept, read
again by refresh(); Slack's silence keeps what was known."""

import pytest
from slack_sdk import WebClient

from accessbot.handlers.usergroups import SlackUserGroups, configured_groups
from accessbot.services.ports import LookupFailed
from tests.factories import make_catalog
from tests.fakes.slack_api import FakeSlack


@pytest.fixture(scope="module")
def fake():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def groups(fake):
    fake.clear()
    fake.set_usergroup("S0SRE", ["U0BOB", "U0CAROL"])
    return SlackUserGroups(WebClient(token="xoxb-test", base_url=fake.api_url, retry_handlers=[]),
                           ["S0SRE"])


def test_members_are_read_on_first_use_then_kept(groups, fake):
    assert groups.members("S0SRE") == {"U0BOB", "U0CAROL"}
    assert groups.members("S0SRE") == {"U0BOB", "U0CAROL"}
    assert [c.args["usergroup"] for c in fake.calls("usergroups.users.list")] == ["S0SRE"]


def test_refresh_reads_again_and_keeps_what_it_had_when_slack_fails(groups, fake):
    groups.members("S0SRE")
    fake.set_usergroup("S0SRE", ["U0DAVE"])

    assert groups.refresh() == {"S0SRE": 1}
    assert groups.members("S0SRE") == {"U0DAVE"}
    fake.fail("usergroups.users.list", "internal_error")
    assert groups.refresh() == {}
    assert groups.members("S0SRE") == {"U0DAVE"}


def test_an_unknown_group_has_no_members(groups):
    assert groups.members("S0GONE") == frozenset()


def test_a_group_never_read_while_slack_fails_raises(groups, fake):
    fake.fail("usergroups.users.list", "internal_error")
    with pytest.raises(LookupFailed):
        groups.members("S0SRE")


def test_configured_groups_are_those_among_approvers_and_admins():
    catalog = make_catalog({"prod-admins": {"approvers": ["U0BOB", "S0SRE"]}},
                           admins=["U0SECLEAD", "S0SECURITY"])
    assert configured_groups(catalog) == {"S0SRE", "S0SECURITY"}
