"""Who is who: Slack user groups (S...) in `approvers` and `admins`, resolved to users.

The members come from Slack (`usergroups.users.list`) through the UserGroups port, which
caches them and refreshes them on a schedule (handlers/ implements it); services ask here.
"""

from collections.abc import Iterable
from typing import Protocol

from accessbot.services.catalog import Catalog, Resource, is_usergroup


class UserGroups(Protocol):
    def members(self, group_id: str) -> frozenset[str]:
        """The Slack user ids in the user group, from the cache (an unknown or empty group:
        none). Raises LookupFailed when it was never read and Slack cannot answer now."""
        ...


def expand(ids: Iterable[str], groups: UserGroups | None) -> frozenset[str]:
    """User ids as they are, user groups as their members (none without a resolver)."""
    users: set[str] = set()
    for slack_id in ids:
        if not is_usergroup(slack_id):
            users.add(slack_id)
        elif groups is not None:
            users |= groups.members(slack_id)
    return frozenset(users)


def in_order(ids: Iterable[str], groups: UserGroups | None) -> tuple[str, ...]:
    """Users in the order given, each user group's members in its place (sorted), once."""
    users: dict[str, None] = {}
    for slack_id in ids:
        if not is_usergroup(slack_id):
            users[slack_id] = None
        elif groups is not None:
            users |= dict.fromkeys(sorted(groups.members(slack_id)))
    return tuple(users)


def approvers(resource: Resource, groups: UserGroups | None, requester_id: str | None = None
              ) -> frozenset[str]:
    """The people who may decide the resource's requests; never the requester."""
    return expand(resource.approvers, groups) - {requester_id}


def may_approve(resource: Resource, user_id: str, requester_id: str,
                groups: UserGroups | None) -> bool:
    return user_id != requester_id and user_id in approvers(resource, groups)


def is_admin(catalog: Catalog, user_id: str, groups: UserGroups | None) -> bool:
    """In `admins`, directly or through a user group."""
    return user_id in expand(catalog.admins, groups)
