"""Every action, block and view id the bot uses, in one place."""

from enum import StrEnum


class ActionId(StrEnum):
    APPROVE = "accessbot.approve"
    DENY = "accessbot.deny"
    END_GRANT = "accessbot.end_grant"
    EXTEND_GRANT = "accessbot.extend_grant"
    RESOURCE_SELECT = "accessbot.resource_select"
    DURATION_INPUT = "accessbot.duration_input"
    REASON_INPUT = "accessbot.reason_input"
    DENY_REASON_INPUT = "accessbot.deny_reason_input"
    FINDING_DEACTIVATE = "accessbot.finding_deactivate"
    FINDING_FIX = "accessbot.finding_fix"
    FINDING_SNOOZE = "accessbot.finding_snooze"
    REVIEW_KEEP = "accessbot.review_keep"
    REVIEW_REMOVE = "accessbot.review_remove"
    FINDING_CAP_SESSION = "accessbot.finding_cap_session"
    APPROVE_LESS = "accessbot.approve_less"


class BlockId(StrEnum):
    RESOURCE = "resource"
    DURATION = "duration"
    REASON = "reason"
    DENY_REASON = "deny_reason"
    DECISION = "decision"
    GRANT_ACTIONS = "grant_actions"


class ViewId(StrEnum):
    REQUEST_FORM = "accessbot.request_form"
    DENY_FORM = "accessbot.deny_form"
    EXTEND_FORM = "accessbot.extend_form"
    APPROVE_LESS_FORM = "accessbot.approve_less_form"


FIELD_BLOCKS = {"resource": BlockId.RESOURCE, "duration": BlockId.DURATION,
                "reason": BlockId.REASON}
