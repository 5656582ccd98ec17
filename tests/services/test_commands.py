from datetime import timedelta

import pytest

from accessbot.services.commands import (
    MAX_COMMAND,
    MAX_REASON,
    Draft,
    ExtensionDraft,
    FieldError,
    OpenForm,
    ShowHelp,
    make_draft,
    make_extension_draft,
    parse_command,
    parse_id,
)
from accessbot.services.errors import InvalidInput, NotAuthorized
from tests.factories import REQUESTER, make_catalog


@pytest.mark.parametrize("text", ["", "   ", None])
def test_no_text_opens_the_form(text, catalog):
    assert parse_command(text, REQUESTER, catalog) == OpenForm()


@pytest.mark.parametrize("text", ["help", "HELP", " help ", "--help", "-h", "?",
                                  "help prod-admins 2h"])
def test_help(text, catalog):
    assert parse_command(text, REQUESTER, catalog) == ShowHelp()


def test_inline_request_becomes_a_draft(catalog):
    draft = parse_command("prod-admins 2h deploying   hotfix\n123", REQUESTER, catalog)

    assert draft == Draft(resource=catalog.get("prod-admins"), duration=timedelta(hours=2),
                          reason="deploying hotfix 123")


@pytest.mark.parametrize("text, field, words", [
    ("prod-owners 2h because", "resource", ["prod-owners", "prod-admins", "prod-readonly"]),
    ("prod-admins 5h because", "duration", ["5m to 4h", "5h"]),
    ("prod-admins 1m because", "duration", ["5m to 4h", "1m"]),
    ("prod-admins soon because", "duration", ["soon"]),
    ("prod-admins 2h", "reason", ["reason"]),
    ("prod-admins 2h    ", "reason", ["reason"]),
    ("prod-admins 2h " + "x" * (MAX_REASON + 1), "reason", ["too long"]),
])
def test_invalid_field(text, field, words, catalog):
    with pytest.raises(FieldError) as caught:
        parse_command(text, REQUESTER, catalog)
    assert caught.value.field == field
    for word in words:
        assert word in str(caught.value)


def test_longest_reason_is_accepted(catalog):
    draft = parse_command("prod-admins 2h " + "x" * MAX_REASON, REQUESTER, catalog)
    assert len(draft.reason) == MAX_REASON


def test_missing_duration_and_reason_shows_usage(catalog):
    with pytest.raises(InvalidInput, match="Usage") as caught:
        parse_command("prod-admins", REQUESTER, catalog)
    assert not isinstance(caught.value, FieldError)


def test_oversized_command_text(catalog):
    text = "prod-admins 2h " + "y" * MAX_COMMAND
    with pytest.raises(InvalidInput, match="too long") as caught:
        parse_command(text, REQUESTER, catalog)
    assert not isinstance(caught.value, FieldError)


@pytest.mark.parametrize("duration_text", [None, "", "   "])
def test_form_without_duration_uses_the_default(duration_text, catalog):
    draft = make_draft(catalog, REQUESTER, "prod-admins", duration_text, "need it")
    assert draft.duration == catalog.get("prod-admins").default_duration == timedelta(hours=1)


def test_form_resource_name_is_trimmed(catalog):
    assert make_draft(catalog, REQUESTER, " prod-readonly ", "2h", "x").resource.name == \
        "prod-readonly"


def test_requesters_restriction():
    catalog = make_catalog({"prod-admins": {"requesters": ["U0CAROL"]}})

    with pytest.raises(NotAuthorized, match="prod-admins"):
        parse_command("prod-admins 2h because", REQUESTER, catalog)
    assert parse_command("prod-admins 2h because", "U0CAROL", catalog).resource.name == \
        "prod-admins"
    assert parse_command("prod-readonly 2h because", REQUESTER, catalog).resource.name == \
        "prod-readonly"


@pytest.mark.parametrize("value, expected", [("12", 12), ("0", 0), ("999999999999", 999999999999)])
def test_parse_id_accepts(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize("value", [
    "12; DROP TABLE grants", "-1", "", None, " 12", "12.0", "0x1f", "1" * 13, "1e3",
])
def test_parse_id_rejects(value):
    with pytest.raises(InvalidInput):
        parse_id(value)


@pytest.mark.parametrize("value", ["²", "١٢"])
def test_parse_id_rejects_non_ascii_digits(value):
    with pytest.raises(InvalidInput):
        parse_id(value)


@pytest.mark.parametrize("duration_text, duration", [("90m", timedelta(minutes=90)),
                                                     ("", None), ("  ", None), (None, None)])
def test_extension_form_becomes_a_draft(duration_text, duration):
    assert make_extension_draft("7", duration_text, "  the  migration\nruns long ") == \
        ExtensionDraft(grant_id=7, duration=duration, reason="the migration runs long")


@pytest.mark.parametrize("duration_text, reason, field, words", [
    ("soon", "because", "duration", "is not a duration"),
    ("1h", "   ", "reason", "reason for needing more time"),
    ("1h", "x" * (MAX_REASON + 1), "reason", "too long"),
])
def test_extension_form_field_errors(duration_text, reason, field, words):
    with pytest.raises(FieldError, match=words) as error:
        make_extension_draft("7", duration_text, reason)
    assert error.value.field == field


def test_extension_form_with_a_bad_grant_id():
    with pytest.raises(InvalidInput, match="not valid") as error:
        make_extension_draft("7; DROP TABLE grants", "1h", "because")
    assert not isinstance(error.value, FieldError)
