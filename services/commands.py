"""Parsing of the /request-access command text and of the request form."""

from dataclasses import dataclass
from datetime import timedelta

from accessbot.services.catalog import Catalog, Resource
from accessbot.services.durations import parse_duration
from accessbot.services.errors import InvalidInput, NotAuthorized

MAX_REASON = 500
MAX_COMMAND = 800
USAGE = "Usage: `/request-access <resource> <duration> <reason>`, `/request-access help`, " \
        "`/request-access list` (your access and requests), " \
        "or `/request-access` alone for a form."
BREAK_GLASS_FLAG = "--break-glass"


class FieldError(InvalidInput):
    """Invalid input tied to one field of the request form."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Draft:
    """A validated request, not yet recorded."""

    resource: Resource
    duration: timedelta
    reason: str


@dataclass(frozen=True)
class ExtensionDraft:
    """A validated ask for more time on a grant, not yet recorded."""

    grant_id: int
    duration: timedelta | None  # None: the resource's default duration
    reason: str


@dataclass(frozen=True)
class ShowHelp:
    pass


@dataclass(frozen=True)
class OpenForm:
    pass


@dataclass(frozen=True)
class ShowList:
    """`/request-access list`: my grants and requests, and what waits for my decision."""


@dataclass(frozen=True)
class BreakGlass:
    """A validated break-glass request: the draft (its duration cut to the resource's
    break_glass_max_duration) and what the requester typed, to confirm and to re-check."""

    draft: Draft
    asked: timedelta  # the duration asked for, before the cut
    duration_text: str | None

    @property
    def cut(self) -> bool:
        return self.asked > self.draft.duration


Command = Draft | ShowHelp | OpenForm | ShowList | BreakGlass


def parse_command(text: str, user_id: str, catalog: Catalog) -> Command:
    """Turn the slash command text into what the user asked for, or raise InvalidInput."""
    text = (text or "").strip()
    if not text:
        return OpenForm()
    if len(text) > MAX_COMMAND:
        raise InvalidInput(f"That is too long ({len(text)} characters; at most {MAX_COMMAND}).")
    words = text.split()
    break_glass = BREAK_GLASS_FLAG in (w.lower() for w in words)
    if break_glass:
        text = " ".join(w for w in words if w.lower() != BREAK_GLASS_FLAG)
    parts = text.split(maxsplit=2)
    if not parts:
        raise InvalidInput(f"Say what you need, for how long and why. {USAGE}")
    if parts[0].lower() in ("help", "-h", "--help", "?"):
        return ShowHelp()
    if parts[0].lower() == "list" and len(parts) == 1:
        return ShowList()
    if len(parts) < 2:
        raise InvalidInput(f"Say how long you need `{parts[0]}` and why. {USAGE}")
    reason = parts[2] if len(parts) > 2 else ""
    if break_glass:
        return make_break_glass(catalog, user_id, parts[0], parts[1], reason)
    return make_draft(catalog, user_id, parts[0], parts[1], reason)


def _requestable(catalog: Catalog, user_id: str, resource_name: str) -> Resource:
    """The named resource, if this user may request it."""
    try:
        resource = catalog.get((resource_name or "").strip())
    except InvalidInput as exc:
        raise FieldError("resource", str(exc)) from None
    if not resource.may_request(user_id):
        raise NotAuthorized(f"You are not allowed to request {resource.name}.")
    return resource


def make_break_glass(catalog: Catalog, user_id: str, resource_name: str,
                     duration_text: str | None, reason: str) -> BreakGlass:
    """Validate a break-glass request (the command's and the form's): the resource allows
    it, a reason is given, and a longer duration than break_glass_max_duration is cut."""
    resource = _requestable(catalog, user_id, resource_name)
    if not resource.break_glass:
        raise FieldError("resource", f"{resource.name} does not allow break-glass; ask for "
                                     "it the usual way.")
    try:
        asked = _duration_field(duration_text) or resource.break_glass_max_duration
        duration = min(asked, resource.break_glass_max_duration)
        resource.check_duration(duration)
    except InvalidInput as exc:
        raise FieldError("duration", str(exc)) from None
    draft = Draft(resource=resource, duration=duration,
                  reason=_reason_field(reason, f"breaking the glass on {resource.name}"))
    return BreakGlass(draft=draft, asked=asked,
                      duration_text=(duration_text or "").strip() or None)


def make_draft(catalog: Catalog, user_id: str, resource_name: str, duration_text: str | None,
               reason: str) -> Draft:
    """Validate a request's fields (shared by the command and the form)."""
    resource = _requestable(catalog, user_id, resource_name)
    try:
        duration = _duration_field(duration_text) or resource.default_duration
        resource.check_duration(duration)
    except InvalidInput as exc:
        raise FieldError("duration", str(exc)) from None
    return Draft(resource=resource, duration=duration,
                 reason=_reason_field(reason, resource.name))


def make_extension_draft(grant_id_text: str | None, duration_text: str | None,
                         reason: str) -> ExtensionDraft:
    """Validate the "more time" form in memory; the resource's limits are checked later."""
    grant_id = parse_id(grant_id_text)
    try:
        duration = _duration_field(duration_text)
    except InvalidInput as exc:
        raise FieldError("duration", str(exc)) from None
    return ExtensionDraft(grant_id=grant_id, duration=duration,
                          reason=_reason_field(reason, "more time"))


def _duration_field(text: str | None) -> timedelta | None:
    """The parsed duration, or None when the field was left empty."""
    return parse_duration(text) if text and text.strip() else None


def _reason_field(reason: str | None, needing: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise FieldError("reason", f"Please give a reason for needing {needing}.")
    if len(reason) > MAX_REASON:
        raise FieldError("reason", f"The reason is too long ({len(reason)} characters; "
                                   f"at most {MAX_REASON}).")
    return reason


def parse_id(value: str | None) -> int:
    """Button values carry only an id; anything else is tampering or a bug."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise InvalidInput("That button is not valid any more.")
    return int(value)
