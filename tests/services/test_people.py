import re

import pytest

from accessbot.services import people
from accessbot.services.catalog import parse_catalog
from accessbot.services.errors import ConfigError


class Groups:
    def __init__(self, members: dict[str, set[str]]):
        self.asked: list[str] = []
        self._members = members

    def members(self, group_id: str) -> frozenset[str]:
        self.asked.append(group_id)
        return frozenset(self._members.get(group_id, ()))


CATALOG = parse_catalog({
    "admins": ["U0SECLEAD", "S0SECURITY"],
    "resources": {"prod": {"kind": "iam_group", "group": "prod",
                           "approvers": ["U0BOB", "S0SRE"]}}})
GROUPS = Groups({"S0SRE": {"U0CAROL", "U0ALICE"}, "S0SECURITY": {"U0SAM"}})


def test_user_groups_are_their_members_and_the_requester_never_approves():
    resource = CATALOG.resources["prod"]
    assert people.approvers(resource, GROUPS, "U0ALICE") == {"U0BOB", "U0CAROL"}
    assert people.may_approve(resource, "U0CAROL", "U0ALICE", GROUPS)
    assert not people.may_approve(resource, "U0ALICE", "U0ALICE", GROUPS)
    assert not people.may_approve(resource, "U0DAVE", "U0ALICE", GROUPS)


def test_without_a_resolver_only_the_listed_users_count():
    assert people.approvers(CATALOG.resources["prod"], None) == {"U0BOB"}
    assert people.is_admin(CATALOG, "U0SECLEAD", None)
    assert not people.is_admin(CATALOG, "U0SAM", None)


def test_admins_through_a_user_group():
    assert people.is_admin(CATALOG, "U0SAM", GROUPS)
    assert not people.is_admin(CATALOG, "U0BOB", GROUPS)


@pytest.mark.parametrize("admins, path", [
    ("U0SECLEAD", "admins"), ([], "admins"), (["C0SECURITY"], "admins[0]"),
])
def test_admins_are_users_or_user_groups(admins, path):
    with pytest.raises(ConfigError, match=re.escape(f"config: {path}: ")):
        parse_catalog({"admins": admins, "resources": {"p": {
            "kind": "iam_group", "group": "p", "approvers": ["U0BOB"]}}})
