"""Domain exceptions. Handlers turn them into user-facing text in one place."""


class AccessBotError(Exception):
    """Base class for every error the bot expects and can explain to a user."""


class InvalidInput(AccessBotError):
    """The user typed something we cannot accept; nothing was recorded."""


class NotFound(AccessBotError):
    """The request, grant or resource does not exist."""


class NotAuthorized(AccessBotError):
    """The user may not perform this action on this object."""


class Conflict(AccessBotError):
    """The object is no longer in the state the action needs (someone else won)."""


class NoIamUser(AccessBotError):
    """The Slack user has no IAM user mapped to them."""


class ConfigError(AccessBotError):
    """The configuration file or an environment setting is invalid."""
