"""The one place where domain errors become the text a user reads."""

import logging

from services.errors import (
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
    if isinstance(error, AccessBotError):
        for kind, prefix in _PREFIX.items():
            if isinstance(error, kind):
                return prefix + str(error)
        return str(error)
    log.exception("unexpected error", exc_info=error)
    return UNEXPECTED
