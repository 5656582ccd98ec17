"""Typed views of the Slack payloads the listeners read, checked before any listener runs.

Slack signs what it sends, but a signature says who sent a body, not that it has the
shape we expect. Every field a listener uses is read here, type-checked, and handed on
as a frozen dataclass; a payload without it is MalformedPayload, which the middleware
(handlers/listeners.CheckAndTime) answers with 400 (over HTTP; in Socket Mode nothing
is acknowledged) and which no listener ever sees.
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accessbot.handlers.ids import ActionId
from accessbot.services.commands import parse_id
from accessbot.services.errors import InvalidInput

log = logging.getLogger(__name__)

USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,31}")
MAX_VALUE = 2000  # a button's value (ours are ids)
MAX_METADATA = 3000  # a view's private_metadata
MAX_FIELD = 3000  # a plain_text_input's value
MAX_COMMAND = 40_000  # a slash command's text: parse_command answers anything over 800


class MalformedPayload(ValueError):
    """A signed payload without a field we read, or with a field of the wrong type."""


@dataclass(frozen=True)
class CommandInput:
    """A slash command."""

    user_id: str
    text: str
    trigger_id: str
    response_url: str | None


@dataclass(frozen=True)
class ClickInput:
    """A button click (block_actions): the first action's id value, and where it came from."""

    user_id: str
    action_id: str
    value: str
    trigger_id: str
    response_url: str | None
    channel_id: str | None


@dataclass(frozen=True)
class FormInput:
    """A modal's submission: each input's text (or selected option's value) by block and
    action id."""

    user_id: str
    callback_id: str
    private_metadata: str
    fields: dict[tuple[str, str], str | None]

    def field(self, block_id: str, action_id: str) -> str | None:
        return self.fields.get((block_id, action_id))


@dataclass(frozen=True)
class HomeOpened:
    """An app_home_opened event: whose App Home, and which tab ("home" or "messages")."""

    user_id: str
    tab: str


def home_input(body: dict) -> HomeOpened:
    event = _object(body, "event")
    return HomeOpened(user_id=_user_id(event.get("user")), tab=_text(event, "tab", 32))


def command_input(body: dict) -> CommandInput:
    return CommandInput(
        user_id=_user_id(body.get("user_id")),
        text=_text(body, "text", MAX_COMMAND),
        trigger_id=_text(body, "trigger_id", 200),
        response_url=_optional_text(body, "response_url", 2000))


def click_input(body: dict) -> ClickInput:
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedPayload("actions: not a list of objects")
    action = actions[0]
    return ClickInput(
        user_id=_user_id(_object(body, "user").get("id")),
        action_id=_text(action, "action_id", 255),
        value=_button_value(action),
        trigger_id=_text(body, "trigger_id", 200),
        response_url=_optional_text(body, "response_url", 2000),
        channel_id=_channel_of(body))


def form_input(body: dict) -> FormInput:
    view = _object(body, "view")
    state = _object(view, "state")
    return FormInput(
        user_id=_user_id(_object(body, "user").get("id")),
        callback_id=_text(view, "callback_id", 255),
        private_metadata=_optional_text(view, "private_metadata", MAX_METADATA) or "",
        fields=_form_fields(_object(state, "values")))


def _form_fields(values: dict) -> dict[tuple[str, str], str | None]:
    fields: dict[tuple[str, str], str | None] = {}
    for block_id, block in values.items():
        if not isinstance(block, dict):
            raise MalformedPayload(f"state.values.{block_id}: not an object")
        for action_id, element in block.items():
            if not isinstance(element, dict):
                raise MalformedPayload(f"state.values.{block_id}.{action_id}: not an object")
            fields[block_id, action_id] = _element_value(element)
    return fields


def _element_value(element: dict) -> str | None:
    """A plain_text_input's value, a static_select's selected option's value, or the
    checked checkboxes' values (comma-separated; None when none is checked)."""
    if "selected_options" in element:
        options = element["selected_options"]
        if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
            raise MalformedPayload("selected_options: not a list of objects")
        return ",".join(_text(o, "value", 150) for o in options) or None
    if "selected_option" in element:
        option = element["selected_option"]
        if option is None:
            return None
        if not isinstance(option, dict):
            raise MalformedPayload("selected_option: not an object")
        return _text(option, "value", 150)
    return _optional_text(element, "value", MAX_FIELD)


def _button_value(action: dict) -> str:
    """Our buttons carry only an id: anything else is tampering or a bug. One exception:
    the break-glass confirmation carries what its requester typed, validated again on
    the click exactly as if typed again (services/break_glass.py: unpack)."""
    value = _text(action, "value", MAX_VALUE)
    if action.get("action_id") == ActionId.BREAK_GLASS_NOW:
        if not is_packed_break_glass(value):
            raise MalformedPayload("value: not a break-glass request")
        return value
    try:
        parse_id(value)
    except InvalidInput:
        raise MalformedPayload("value: not an id") from None
    return value


def is_packed_break_glass(value: str) -> bool:
    """[resource, duration or null, reason]: what services.break_glass.pack writes."""
    try:
        items = json.loads(value)
    except ValueError:
        return False
    return (isinstance(items, list) and len(items) == 3 and isinstance(items[0], str)
            and isinstance(items[1], str | None) and isinstance(items[2], str))


def _channel_of(body: dict) -> str | None:
    """The channel the clicked message is in (signed by Slack, so it can be trusted)."""
    channel = _optional_object(body, "channel").get("id") \
        or _optional_object(body, "container").get("channel_id")
    if channel is None:
        return None
    if not isinstance(channel, str) or not CHANNEL_ID.fullmatch(channel):
        raise MalformedPayload("channel: not a channel id")
    return channel


def _user_id(value: Any) -> str:
    if not isinstance(value, str) or not USER_ID.fullmatch(value):
        raise MalformedPayload("user id: missing or not a Slack user id")
    return value


def _object(body: dict, key: str) -> dict:
    value = body.get(key)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{key}: missing or not an object")
    return value


def _optional_object(body: dict, key: str) -> dict:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPayload(f"{key}: not an object")
    return value


def _text(body: dict, key: str, limit: int) -> str:
    value = _optional_text(body, key, limit)
    if value is None:
        raise MalformedPayload(f"{key}: missing")
    return value


def _optional_text(body: dict, key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{key}: not a string")
    if len(value) > limit:
        raise MalformedPayload(f"{key}: longer than {limit} characters")
    return value


# -- what Bolt itself reads, before any middleware -------------------------------------

_OBJECTS = ("view", "container", "event", "message", "previous_message", "item",
            "assistant_thread", "function_data", "state", "workflow_step")
_LISTS_OF_OBJECTS = ("actions", "authorizations", "response_urls")
_IDS = ("user", "team", "enterprise", "channel")  # a string, or an object with a string id
_STRINGS = ("type", "command", "callback_id", "action_id", "user_id", "team_id",
            "channel_id", "enterprise_id", "response_url", "trigger_id", "thread_ts",
            "app_installed_team_id")
_NESTED = ("view", "event", "message", "previous_message", "item", "assistant_thread")
_HAS_ACTIONS = ("block_actions", "interactive_message")


def check_envelope(body: dict) -> None:
    """Raise MalformedPayload unless every field that Bolt's request parsing and listener
    matching index has the type Bolt assumes (it indexes them unchecked)."""
    _check_fields(body)
    for key in _NESTED:
        if isinstance(body.get(key), dict):
            _check_fields(body[key])
    for key in ("authorizations", "response_urls"):
        for item in body.get(key) or []:
            _check_fields(item)
    if body.get("type") in _HAS_ACTIONS and not body.get("actions"):
        raise MalformedPayload(f"{body['type']} without actions")
    if body.get("type") in ("view_submission", "view_closed"):
        _text(_object(body, "view"), "callback_id", 255)


def _check_fields(body: dict) -> None:
    # Bolt tests these for presence (`"view" in body`), then indexes them: null won't do
    for key in _OBJECTS:
        if key in body and not isinstance(body[key], dict):
            raise MalformedPayload(f"{key}: not an object")
    for key in _LISTS_OF_OBJECTS:
        items = body.get(key, [])
        if not (isinstance(items, list) and all(isinstance(item, dict) for item in items)):
            raise MalformedPayload(f"{key}: not a list of objects")
    for key in _IDS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            _optional_text(_object(body, key), "id", 255)
    for key in _STRINGS:
        _optional_text(body, key, 100_000)


# -- the Bolt middleware: the shape checks for HTTP and Socket Mode alike -----------------

def input_of(body: dict) -> Callable[[dict], object] | None:
    """The parse function for the listener that will read this body."""
    if "command" in body:
        return command_input
    kind = body.get("type")
    if kind == "block_actions":
        return click_input
    if kind == "view_submission":
        return form_input
    if kind == "event_callback" and (body.get("event") or {}).get("type") == "app_home_opened":
        return home_input
    return None
