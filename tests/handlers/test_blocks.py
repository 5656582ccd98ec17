"""Block Kit builders, on model objects built in memory."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from accessbot.handlers.blocks import (
    decision_text,
    deny_form,
    expiry_warning,
    extend_form,
    extension_granted,
    grant_message,
    help_message,
    request_failed,
    request_form,
    request_message,
    request_outcome,
    submitted_text,
)
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import AccessRequest, Grant, GrantStatus, RequestStatus
from tests.factories import make_catalog

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ARN = "arn:aws:iam::123456789012:role/ProdReadOnly"


REQUEST = {"id": 42, "requester_id": "U0ALICE", "resource": "prod-admins",
           "duration": timedelta(hours=2), "reason": "deploying hotfix 123",
           "iam_user": "alice", "created_at": NOW, "decide_by": NOW + timedelta(hours=24)}
DECIDED = {"decided_by": "U0BOB", "decided_at": NOW + timedelta(minutes=5)}
GRANT = {"id": 7, "request_id": 42, "requester_id": "U0ALICE", "iam_user": "alice",
         "resource": "prod-admins", "kind": "iam_group", "target": "prod-admins",
         "starts_at": NOW, "expires_at": NOW + timedelta(hours=2), "granted_at": NOW}


def a_request(status=RequestStatus.PENDING, **fields) -> AccessRequest:
    decided = {} if status is RequestStatus.PENDING else DECIDED
    return AccessRequest(**{**REQUEST, **decided, "status": status, **fields})


def a_grant(status=GrantStatus.ACTIVE, **fields) -> Grant:
    return Grant(**{**GRANT, "status": status, **fields})


def of_type(blocks: list[dict], kind: str) -> list[dict]:
    return [block for block in blocks if block["type"] == kind]


def text_of(blocks: list[dict]) -> str:
    return json.dumps(blocks)


@pytest.fixture
def catalog():
    return make_catalog({"break-glass": {"kind": "iam_group", "group": "root-ish",
                                         "approvers": ["U0DAVE"], "requesters": ["U0CAROL"]}})


def test_pending_request_has_approve_and_deny_buttons(catalog):
    text, blocks = request_message(a_request(), catalog.get("prod-admins"))

    [actions] = of_type(blocks, "actions")
    assert actions["block_id"] == BlockId.DECISION
    buttons = {b["action_id"]: b for b in actions["elements"]}
    assert set(buttons) == {ActionId.APPROVE, ActionId.APPROVE_LESS, ActionId.DENY}
    assert buttons[ActionId.APPROVE]["value"] == buttons[ActionId.DENY]["value"] == "42"
    assert buttons[ActionId.APPROVE_LESS]["value"] == "42"
    assert buttons[ActionId.APPROVE]["text"]["text"] == "Approve"
    assert buttons[ActionId.DENY]["text"]["text"] == "Deny"
    assert "waiting for approval" in text
    body = text_of(blocks)
    for shown in ("#42", "<@U0ALICE>", "2h", "deploying hotfix 123", "`alice`",
                  "Administrator access to production"):
        assert shown in body


@pytest.mark.parametrize("status, shown", [
    (RequestStatus.APPROVED, ["Approved* by <@U0BOB>"]),
    (RequestStatus.DENIED, ["Denied* by <@U0BOB>", ">not during the freeze"]),
    (RequestStatus.EXPIRED, ["Expired", "nobody decided in time"]),
    (RequestStatus.FAILED, ["Not submitted", "no IAM user"]),
])
def test_settled_request_has_no_buttons_and_says_how_it_ended(catalog, status, shown):
    reason = {RequestStatus.DENIED: "not during the freeze",
              RequestStatus.FAILED: "no IAM user"}.get(status)
    request = a_request(status, decision_reason=reason)

    text, blocks = request_message(request, catalog.get("prod-admins"))

    assert of_type(blocks, "actions") == []
    assert ActionId.APPROVE not in text_of(blocks)
    last = blocks[-1]["text"]["text"]
    for words in shown:
        assert words in last
    assert status.value.lower() in text


def test_settled_request_shows_when_it_was_decided(catalog):
    request = a_request(RequestStatus.APPROVED)
    _text, blocks = request_message(request, catalog.get("prod-admins"))
    assert f"<!date^{int(request.decided_at.timestamp())}^" in blocks[-1]["text"]["text"]


def test_request_for_a_resource_no_longer_in_the_catalog(catalog):
    _text, blocks = request_message(a_request(resource="retired"), None)
    assert "retired" in text_of(blocks)
    assert len(of_type(blocks, "actions")) == 1


def test_help_lists_each_resource_with_its_limits(catalog):
    resources = catalog.requestable_by("U0ALICE")

    text, blocks = help_message(resources)

    body = text_of(blocks)
    for resource in resources:
        assert f"*{resource.name}*" in body
        assert resource.limits_text() in body
    assert "default 1h, 5m to 4h" in body
    assert "`ProdReadOnly`" in body and "<@U0BOB>, <@U0DAVE>" in body
    assert "break-glass" not in body
    assert text == "Resources you may request: prod-admins, prod-readonly"


def test_help_with_nothing_to_request():
    text, blocks = help_message([])
    assert "nothing you may request" in text
    assert len(blocks) == 1


def test_request_form_offers_only_requestable_resources(catalog):
    view = request_form(catalog, "U0ALICE")

    assert view["type"] == "modal" and view["callback_id"] == ViewId.REQUEST_FORM
    inputs = of_type(view["blocks"], "input")
    assert [b["block_id"] for b in inputs] == [BlockId.RESOURCE, BlockId.DURATION, BlockId.REASON]
    resource, duration, reason = inputs
    assert resource["element"]["action_id"] == ActionId.RESOURCE_SELECT
    assert [o["value"] for o in resource["element"]["options"]] == ["prod-admins",
                                                                   "prod-readonly"]
    assert duration["optional"] is True
    assert duration["element"]["action_id"] == ActionId.DURATION_INPUT
    assert reason["element"]["action_id"] == ActionId.REASON_INPUT
    assert not reason.get("optional", False)


def test_request_form_includes_restricted_resources_for_their_requesters(catalog):
    view = request_form(catalog, "U0CAROL")
    options = of_type(view["blocks"], "input")[0]["element"]["options"]
    assert "break-glass" in [o["value"] for o in options]


def test_deny_form_carries_the_request_id(catalog):
    view = deny_form(a_request())

    assert view["callback_id"] == ViewId.DENY_FORM
    assert view["private_metadata"] == "42"
    [reason] = of_type(view["blocks"], "input")
    assert reason["block_id"] == BlockId.DENY_REASON
    assert reason["element"]["action_id"] == ActionId.DENY_REASON_INPUT
    assert reason["optional"] is True


def test_active_grant_has_the_end_and_more_time_buttons():
    _text, blocks = grant_message(a_grant())

    [actions] = of_type(blocks, "actions")
    assert actions["block_id"] == BlockId.GRANT_ACTIONS
    end, more = actions["elements"]
    assert (end["action_id"], end["value"]) == (ActionId.END_GRANT, "7")
    assert "confirm" in end
    assert (more["action_id"], more["value"]) == (ActionId.EXTEND_GRANT, "7")
    assert more["text"]["text"] == "Ask for more time"
    assert "`alice`" in text_of(blocks)


@pytest.mark.parametrize("status, fields, shown", [
    (GrantStatus.REVOKED, {"revoked_at": NOW + timedelta(hours=2), "end_reason": "expired"},
     "ended"),
    (GrantStatus.FAILED, {"last_error": "NoSuchEntity"}, "NoSuchEntity"),
    (GrantStatus.PENDING, {"granted_at": None}, "putting"),
])
def test_ended_or_pending_grant_has_no_buttons(status, fields, shown):
    text, blocks = grant_message(a_grant(status, **fields))

    assert of_type(blocks, "actions") == []
    assert shown in text


def test_role_grant_mentions_the_role_arn():
    grant = a_grant(kind="iam_role", target="ProdReadOnly", resource="prod-readonly",
                    role_arn=ARN)
    text, blocks = grant_message(grant)
    assert ARN in text and ARN in text_of(blocks)


def test_group_grant_mentions_no_role():
    text, _blocks = grant_message(a_grant())
    assert "arn:" not in text and "role" not in text.lower()


# -- more time ------------------------------------------------------------------------

LATER = NOW + timedelta(hours=2)  # the grant's expiry


def an_extension(status=RequestStatus.PENDING, grant: Grant | None = None,
                 **fields) -> AccessRequest:
    return a_request(status, id=43, duration=timedelta(minutes=30), extends_grant_id=7,
                     extended_grant=grant or a_grant(), reason="the migration runs long",
                     **fields)


def stamp(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"


def test_pending_extension_names_the_grant_and_its_current_expiry(catalog):
    text, blocks = request_message(an_extension(), catalog.get("prod-admins"))

    assert blocks[0]["text"]["text"] == "Extension request #43"
    body = text_of(blocks)
    assert "<@U0ALICE> asks for *30m more* on *prod-admins*" in body
    assert "extension of grant #7: access currently runs until " + stamp(LATER) in body
    assert "the migration runs long" in body
    [actions] = of_type(blocks, "actions")
    assert [b["action_id"] for b in actions["elements"]] == [ActionId.APPROVE, ActionId.DENY]
    assert all(b["value"] == "43" for b in actions["elements"])
    assert text == ("Extension request #43: U0ALICE asks for 30m more on prod-admins; extension "
                    "of grant #7: access currently runs until 2026-11-28 11:00:00 UTC "
                    "(waiting for approval)")


def test_approved_extension_shows_the_new_expiry_and_a_cap(catalog):
    capped = "Capped: prod-admins may run at most 4h from the approval"
    grant = a_grant(expires_at=NOW + timedelta(hours=4))
    _text, blocks = request_message(
        an_extension(RequestStatus.APPROVED, grant, decision_reason=capped),
        catalog.get("prod-admins"))

    assert of_type(blocks, "actions") == []
    body = text_of(blocks)
    assert "currently runs until " + stamp(NOW + timedelta(hours=4)) in body
    assert "Approved* by <@U0BOB>" in blocks[-1]["text"]["text"]
    assert capped in blocks[-1]["text"]["text"]


def test_extension_of_an_ended_grant_says_so(catalog):
    ended = a_grant(GrantStatus.REVOKED, revoked_at=NOW + timedelta(minutes=20),
                    end_reason="ended early by the requester")
    text, blocks = request_message(an_extension(grant=ended), catalog.get("prod-admins"))
    assert "grant #7, which has ended (" + stamp(NOW + timedelta(minutes=20)) in text_of(blocks)
    assert "which has ended (2026-11-28 09:20:00 UTC)" in text


def test_the_requester_hears_about_an_extension_as_more_time(catalog):
    waiting = submitted_text(an_extension(), catalog.get("prod-admins"))
    assert "Request #43 for 30m more on *prod-admins* is waiting for <@U0BOB>" in waiting
    denied, _blocks = request_outcome(an_extension(RequestStatus.DENIED,
                                                   decision_reason="finish tomorrow"))
    assert "request #43 for more time on *prod-admins* was denied by <@U0BOB>" in denied
    assert ">finish tomorrow" in denied
    expired, _blocks = request_outcome(an_extension(RequestStatus.EXPIRED))
    assert "for more time on *prod-admins* expired" in expired


def test_extension_granted_dm_gives_the_new_expiry():
    grant = a_grant(expires_at=LATER + timedelta(minutes=30))
    text, _blocks = extension_granted(grant, an_extension(RequestStatus.APPROVED, grant))
    assert text == (":alarm_clock: <@U0BOB> approved request #43: you now have *prod-admins* "
                    "until " + stamp(LATER + timedelta(minutes=30))
                    + "{date_short_pretty} {time_secs}|2026-11-28 11:30:00 UTC>.")

    capped, _blocks = extension_granted(grant, an_extension(
        RequestStatus.APPROVED, grant, decision_reason="Capped: at most 4h"))
    assert capped.endswith("\n>Capped: at most 4h")


def test_expiry_warning_offers_more_time():
    _text, blocks = expiry_warning(a_grant(), LATER - timedelta(minutes=15))
    [actions] = of_type(blocks, "actions")
    [button] = actions["elements"]
    assert (button["action_id"], button["value"]) == (ActionId.EXTEND_GRANT, "7")


def test_extend_form_carries_the_grant_id_and_shows_the_limits(catalog):
    view = extend_form(a_grant(), catalog.get("prod-admins"))

    assert view["callback_id"] == ViewId.EXTEND_FORM
    assert view["private_metadata"] == "7"
    assert stamp(LATER) in text_of(view["blocks"])
    duration, reason = of_type(view["blocks"], "input")
    assert (duration["block_id"], duration["element"]["action_id"]) == (
        BlockId.DURATION, ActionId.DURATION_INPUT)
    assert duration["optional"] is True
    assert "default 1h, 5m to 4h" in duration["hint"]["text"]
    assert duration["element"]["placeholder"]["text"] == "1h"
    assert (reason["block_id"], reason["element"]["action_id"]) == (
        BlockId.REASON, ActionId.REASON_INPUT)
    assert not reason.get("optional", False)


# -- what people typed: escaped once, cut to Block Kit's limits -----------------------------

HOSTILE = "<!channel> see <https://evil.example|Approve here> & <@U0EVE>"
ESCAPED = ("&lt;!channel&gt; see &lt;https://evil.example|Approve here&gt; &amp; "
           "&lt;@U0EVE&gt;")


def assert_inert(*texts: str) -> None:
    """No ping, no link and no mention survives from HOSTILE, and nothing was escaped
    twice."""
    for text in texts:
        assert "<!channel>" not in text and "<https://evil" not in text
        assert "<@U0EVE>" not in text and "&amp;lt;" not in text


def texts_of(blocks: list[dict]) -> list[str]:
    """Every text string in the blocks, as Slack would read it."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(blocks)
    return found


def test_a_hostile_reason_is_shown_as_written_and_pings_nobody(catalog):
    text, blocks = request_message(a_request(reason=HOSTILE), catalog.get("prod-admins"))
    assert ESCAPED in text_of(blocks)
    assert_inert(text, *texts_of(blocks))
    assert "<@U0ALICE>" in text_of(blocks)  # the bot's own mention of the requester works


@pytest.mark.parametrize("status", [RequestStatus.DENIED, RequestStatus.APPROVED,
                                    RequestStatus.FAILED])
def test_a_hostile_decision_reason_is_escaped_in_every_copy(catalog, status):
    request = a_request(status, decision_reason=HOSTILE)
    _text, blocks = request_message(request, catalog.get("prod-admins"))
    assert ESCAPED in blocks[-1]["text"]["text"]
    line = decision_text(request)  # the thread reply
    assert ESCAPED in line
    assert_inert(line, *texts_of(blocks))


def test_a_hostile_deny_reason_in_the_requesters_dm():
    text, blocks = request_outcome(a_request(RequestStatus.DENIED, decision_reason=HOSTILE))
    assert ESCAPED in text and ESCAPED in text_of(blocks)
    assert "<@U0BOB>" in text
    assert_inert(text, *texts_of(blocks))


def test_a_multi_line_reason_is_quoted_line_by_line(catalog):
    _text, blocks = request_message(a_request(reason="first\n<!here>"), None)
    assert ">first\\n>&lt;!here&gt;" in text_of(blocks)


def test_an_id_that_is_not_a_slack_id_is_not_a_mention(catalog):
    text, blocks = request_message(a_request(requester_id="U0X> <!here"), None)
    assert "<!here>" not in text_of(blocks) and "<!here>" not in text
    assert "U0X&gt; &lt;!here" in text_of(blocks)


def test_the_reason_an_aws_error_gave_is_escaped():
    text, blocks = grant_message(a_grant(GrantStatus.FAILED, last_error="<b>AccessDenied</b>"))
    assert "&lt;b&gt;AccessDenied&lt;/b&gt;" in text and "<b>" not in text_of(blocks)


def test_why_a_request_failed_keeps_its_mentions_and_escapes_the_rest():
    why = "ask <@U0DAVE> to tag your IAM user with email=<your Slack email>"
    text, _blocks = request_failed(a_request(RequestStatus.FAILED), why)
    assert "<@U0DAVE>" in text and "email=&lt;your Slack email&gt;" in text


def test_the_usage_line_in_help_is_escaped(catalog):
    _text, blocks = help_message(catalog.requestable_by("U0ALICE"))
    usage = blocks[-1]["elements"][0]["text"]
    assert "&lt;resource&gt; &lt;duration&gt; &lt;reason&gt;" in usage


class OneResource:
    """A catalog of one resource, for the form."""

    def __init__(self, resource):
        self.resource = resource

    def requestable_by(self, _user_id):
        return [self.resource]


def test_long_texts_are_cut_to_block_kits_limits(catalog):
    # the configuration allows 300 characters; the builders hold at any length
    long = replace(catalog.get("prod-admins"), description="<d> " + "x" * 5000)
    _text, blocks = request_message(a_request(reason="r" * 4000), long)
    section = blocks[1]
    assert all(len(field["text"]) <= 2000 for field in section["fields"])
    assert all(len(block["text"]["text"]) <= 3000 for block in blocks if "text" in block)
    assert blocks[1]["fields"][0]["text"].endswith("…")
    _text, help_blocks = help_message([long])
    assert all(len(t) <= 3000 for t in texts_of(help_blocks))
    assert "&lt;d&gt;" in text_of(help_blocks)
    [option] = request_form(OneResource(long), "U0ALICE")["blocks"][0]["element"]["options"]
    assert len(option["description"]["text"]) <= 75
    text, blocks = grant_message(a_grant(GrantStatus.FAILED, last_error="<" * 3000))
    assert len(blocks[0]["text"]["text"]) <= 3000 and len(text) <= 4000
    assert "&lt;" * 10 in text and not text.endswith("&l…")


def test_a_cut_never_ends_inside_an_escape_or_a_mention():
    reason = "a" * 2990 + "&&&&&&"
    _text, blocks = request_message(a_request(reason=reason), None)
    [shown] = [b["text"]["text"] for b in blocks if "Reason" in b.get("text", {}).get("text",
                                                                                        "")]
    assert len(shown) <= 3000
    assert shown.endswith("&amp;…") or shown.endswith("a…")


def test_the_grant_dm_says_the_conditions_of_a_role():
    grant = a_grant(kind="iam_role", target="DbAdmin", resource="db", role_arn=ARN)
    text, _blocks = grant_message(grant, "only from 10.0.0.0/8; only with MFA")
    assert "IAM itself refuses after the expiry time, and only from 10.0.0.0/8; only with MFA." \
        in text


def test_an_identity_center_grant_says_where_to_sign_in():
    grant = a_grant(kind="sso_permission_set", target="AdministratorAccess",
                    accounts="222222222222,333333333333")
    text, _blocks = grant_message(grant)
    assert ("permission set `AdministratorAccess` in accounts `222222222222`, `333333333333`: "
            "sign in through your AWS access portal") in text
    assert "IAM user" not in text


def test_a_grant_in_place_in_some_accounts_says_each_accounts_result_as_plain_text():
    from accessbot.handlers.blocks import grant_partly

    text, blocks = grant_partly(a_grant(), ["222222222222"],
                                {"333333333333": "refused <!channel> " + "x" * 1000})
    assert "in place in 1 of 2 accounts" in text
    assert "• 222222222222: :white_check_mark: in place" in text
    assert "• 333333333333: :warning: not yet (refused &lt;!channel&gt; x" in text
    assert len(text) < 1000  # an AWS error is cut, not posted whole
    assert "<!channel>" not in json.dumps(blocks)
