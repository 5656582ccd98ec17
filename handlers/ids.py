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
    OPEN_REQUEST_FORM = "accessbot.open_request_form"  # App Home's Request access button
    BREAK_GLASS_CHECK = "accessbot.break_glass_check"        # the request form's checkbox
    BREAK_GLASS_NOW = "accessbot.break_glass_now"            # the command's confirmation
    BREAK_GLASS_REVIEWED = "accessbot.break_glass_reviewed"  # value: the review id
    BREAK_GLASS_NOTE_INPUT = "accessbot.break_glass_note_input"
    CANCEL_REQUEST = "accessbot.cancel_request"
    REVOKE_GRANT = "accessbot.revoke_grant"
    REVOKE_REASON_INPUT = "accessbot.revoke_reason_input"
    APPROVE_LESS = "accessbot.approve_less"


class BlockId(StrEnum):
    RESOURCE = "resource"
    DURATION = "duration"
    REASON = "reason"
    DENY_REASON = "deny_reason"
    DECISION = "decision"
    GRANT_ACTIONS = "grant_actions"
    BREAK_GLASS = "break_glass"
    BREAK_GLASS_NOTE = "break_glass_note"
    BREAK_GLASS_REVIEW = "break_glass_review"
    WAITING_ACTIONS = "waiting_actions"
    REVOKE = "revoke"
    REVOKE_REASON = "revoke_reason"


class ViewId(StrEnum):
    REQUEST_FORM = "accessbot.request_form"
    DENY_FORM = "accessbot.deny_form"
    EXTEND_FORM = "accessbot.extend_form"
    BREAK_GLASS_FORM = "accessbot.break_glass_form"          # the "are you sure" step
    BREAK_GLASS_REVIEW_FORM = "accessbot.break_glass_review_form"
    REVOKE_FORM = "accessbot.revoke_form"
    APPROVE_LESS_FORM = "accessbot.approve_less_form"


FIELD_BLOCKS = {"resource": BlockId.RESOURCE, "duration": BlockId.DURATION,
                "reason": BlockId.REASON}
