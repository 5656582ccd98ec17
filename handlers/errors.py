"""The one place where domain errors become the text a user reads."""

import logging

from accessbot.handlers.mrkdwn import MESSAGE_TEXT, cut, escape_except_mentions
from accessbot.services.errors import (
    AccessBotError,
    Conflict,
    InvalidInput,
    NoIamUser,
    NotAuthorized,
    NotFound,
)

log = logging.getLogger(__name__)

_PREFIX = {
    InvalidInput: ":warning: ",
    NotAuthorized: ":no_entry_sign: ",
    Conflict: ":information_source: ",
    NotFound: ":grey_question: ",
    NoIamUser: ":bust_in_silhouette: ",
}

UNEXPECTED = ":boom: Something went wrong on our side; the team has the details in the logs."


def user_message(error: Exception) -> str:
    """mrkdwn for an ephemeral answer or a DM. An error's text may repeat what the user
    typed (an unknown resource name, a bad duration), so it is escaped; the mentions
    services/ writes into it (`<@U...>`) are kept."""
    if isinstance(error, AccessBotError):
        text = escape_except_mentions(str(error))
        prefix = next((p for kind, p in _PREFIX.items() if isinstance(error, kind)), "")
        return cut(prefix + text, MESSAGE_TEXT)
    log.exception("unexpected error", exc_info=error)
    return UNEXPECTED
