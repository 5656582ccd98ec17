"""Slack user groups (S...) among `approvers` and `admins`: services.people.UserGroups.

Members are read with `usergroups.users.list` (scope usergroups:read), kept in the worker
process, and read again on a schedule (the `refresh-user-groups` job) and on first use. A
group Slack cannot answer for keeps the members it last had; one never read raises
LookupFailed, so that whoever asked retries rather than deciding on no members.
"""

import logging
import threading
from collections.abc import Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from accessbot.services.catalog import Catalog, is_usergroup
from accessbot.services.ports import LookupFailed

log = logging.getLogger(__name__)

# a group that is not there (deleted, or a typo in the configuration) has no members
GONE = frozenset({"no_such_subteam", "subteam_not_found"})


def configured_groups(catalog: Catalog) -> frozenset[str]:
    """The user groups the configuration names, as approvers or admins."""
    ids = [*catalog.admins, *(a for r in catalog.resources.values() for a in r.approvers)]
    return frozenset(i for i in ids if is_usergroup(i))


class SlackUserGroups:
    def __init__(self, client: WebClient, groups: Iterable[str] = ()):
        self.client = client
        self.groups = frozenset(groups)  # refreshed on schedule; others when first asked
        self._members: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        with self._lock:
            known = self._members.get(group_id)
        if known is not None:
            return known
        return self._read(group_id)  # raises LookupFailed: never read, no answer now

    def refresh(self) -> dict[str, int]:
        """Read every configured (and every asked-about) group again: members by group. A
        group Slack does not answer for now keeps what it had."""
        with self._lock:
            groups = self.groups | set(self._members)
        counts = {}
        for group_id in sorted(groups):
            try:
                counts[group_id] = len(self._read(group_id))
            except LookupFailed as exc:
                log.warning("user group %s: could not read its members: %s", group_id, exc)
        return counts

    def _read(self, group_id: str) -> frozenset[str]:
        try:
            answer = self.client.usergroups_users_list(usergroup=group_id).data
            members = frozenset(u for u in answer.get("users") or [] if isinstance(u, str))
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if error not in GONE:
                raise LookupFailed(f"Slack said {error or exc.response.status_code}") from exc
            log.warning("user group %s: Slack says %s; it has no members here", group_id,
                        error)
            members = frozenset()
        except (SlackClientError, OSError, ValueError, AttributeError) as exc:
            raise LookupFailed(f"Slack unreachable: {exc}") from exc
        with self._lock:
            self._members[group_id] = members
        return members
