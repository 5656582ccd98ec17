"""What a listener hands to the worker: the task's name and its arguments, encoded as JSON
for the inbox row (services/inbox.py). The web process writes them, the worker
(handlers/work.py) reads them; neither side's code is the other's."""

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from accessbot.services.catalog import Catalog
from accessbot.services.commands import Draft, ExtensionDraft
from accessbot.services.errors import NotFound


class Task(StrEnum):
    """Everything a listener can hand over; each value names a method of Work."""

    OPEN_VIEW = "open_view"
    SUBMIT_REQUEST = "submit_request"
    APPROVE = "approve"
    ASK_APPROVE_DURATION = "ask_approve_duration"  # "Approve for less…": the modal
    APPROVE_LESS = "approve_less"
    ASK_DENY_REASON = "ask_deny_reason"
    DENY = "deny"
    END_GRANT = "end_grant"
    OPEN_EXTEND_FORM = "open_extend_form"
    SUBMIT_EXTENSION = "submit_extension"
    DEACTIVATE_KEY = "deactivate_key"
    WILL_FIX = "will_fix"
    SNOOZE = "snooze"
    REVIEW_KEEP = "review_keep"
    REVIEW_REMOVE = "review_remove"
    CAP_SESSION = "cap_session"
    SHOW_LIST = "show_list"
    HOME_OPENED = "home_opened"
    SUBMIT_BREAK_GLASS = "submit_break_glass"
    OPEN_BREAK_GLASS_REVIEW = "open_break_glass_review"
    BREAK_GLASS_REVIEWED = "break_glass_reviewed"
    CANCEL_REQUEST = "cancel_request"
    ASK_REVOKE_REASON = "ask_revoke_reason"
    REVOKE_GRANT = "revoke_grant"


@dataclass(frozen=True)
class ReplyTo:
    """Where a later answer goes: the response_url (ephemeral), or else, for views that
    have none, a DM to the user."""

    user_id: str
    response_url: str | None = None


def encode_args(args: tuple) -> str:
    """A task's arguments as JSON; drafts carry the resource's name, durations seconds."""
    def encode(value):
        if isinstance(value, ReplyTo):
            return {"reply_to": [value.user_id, value.response_url]}
        if isinstance(value, Draft):
            return {"draft": [value.resource.name, value.duration.total_seconds(),
                              value.reason]}
        if isinstance(value, ExtensionDraft):
            seconds = value.duration.total_seconds() if value.duration else None
            return {"extension_draft": [value.grant_id, seconds, value.reason]}
        return {"value": value}

    return json.dumps([encode(a) for a in args])


def decode_args(text: str, catalog: Catalog) -> tuple:
    def decode(item: dict):
        if "reply_to" in item:
            return ReplyTo(*item["reply_to"])
        if "draft" in item:
            name, seconds, reason = item["draft"]
            resource = catalog.resources.get(name)
            if resource is None:
                raise NotFound(f"resource {name} is no longer in the catalog")
            return Draft(resource, timedelta(seconds=seconds), reason)
        if "extension_draft" in item:
            grant_id, seconds, reason = item["extension_draft"]
            return ExtensionDraft(grant_id, None if seconds is None
                                  else timedelta(seconds=seconds), reason)
        return item["value"]

    return tuple(decode(item) for item in json.loads(text))
