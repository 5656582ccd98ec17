"""Block Kit for a request's and a grant's life: Cancel on the waiting DM, Revoke on the
approval message while the grant is live, who revoked it, reminders, the Revoke form."""

import pytest

from accessbot.handlers.blocks import (
    grant_message,
    reminder_message,
    request_message,
    revoke_form,
    submitted_message,
)
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import GrantStatus, RequestStatus
from tests.factories import make_catalog
from tests.handlers.test_blocks import NOW, a_grant, a_request, of_type, text_of

HOSTILE = "<!channel> see <https://evil.example|here>"


@pytest.fixture
def resource():
    return make_catalog().get("prod-admins")


def approved_with(grant) -> object:
    request = a_request(RequestStatus.APPROVED)
    request.grant = grant
    return request


@pytest.mark.parametrize("status", [GrantStatus.PENDING, GrantStatus.ACTIVE])
def test_an_approved_request_shows_revoke_while_its_grant_is_live(resource, status):
    _, blocks = request_message(approved_with(a_grant(status)), resource)

    [actions] = of_type(blocks, "actions")
    [button] = actions["elements"]
    assert (actions["block_id"], button["action_id"], button["value"]) == (
        BlockId.REVOKE, ActionId.REVOKE_GRANT, "7")
    assert button["text"]["text"] == "Revoke"


@pytest.mark.parametrize("grant", [
    a_grant(GrantStatus.REVOKED, end_reason="expired"),
    a_grant(GrantStatus.FAILED),
    a_grant(GrantStatus.ACTIVE, end_reason="ended early by the requester"),
], ids=["expired", "failed", "ending"])
def test_no_revoke_once_the_grant_ends_or_is_ending(resource, grant):
    _, blocks = request_message(approved_with(grant), resource)
    assert of_type(blocks, "actions") == []


def test_every_copy_says_who_revoked_it_and_why_escaped(resource):
    grant = a_grant(GrantStatus.REVOKED, revoked_by="U0BOB", revoke_reason=HOSTILE,
                    end_reason="revoked by U0BOB")
    _, blocks = request_message(approved_with(grant), resource)

    body = text_of(blocks)
    assert "Access revoked by <@U0BOB>" in body
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body
    assert of_type(blocks, "actions") == []


def test_the_holder_is_told_who_revoked_it_and_why(resource):
    grant = a_grant(GrantStatus.REVOKED, revoked_by="U0SECLEAD", revoke_reason="offboarding",
                    end_reason="revoked by U0SECLEAD", revoked_at=NOW)
    text, _ = grant_message(grant)
    assert "revoked by <@U0SECLEAD>" in text and ">offboarding" in text


def test_a_cancelled_request_says_so_on_every_copy(resource):
    text, blocks = request_message(a_request(RequestStatus.CANCELLED, decided_by="U0ALICE"),
                                   resource)
    assert "*Cancelled* by <@U0ALICE>" in text_of(blocks)
    assert "(cancelled)" in text
    assert of_type(blocks, "actions") == []


def test_the_waiting_dm_has_cancel_while_pending(resource):
    text, blocks = submitted_message(a_request(), resource)

    [actions] = of_type(blocks, "actions")
    [button] = actions["elements"]
    assert (button["action_id"], button["value"]) == (ActionId.CANCEL_REQUEST, "42")
    assert button["confirm"]["confirm"]["text"] == "Cancel it"
    assert "waiting for <@U0BOB>, <@U0DAVE>" in text


@pytest.mark.parametrize("status, shown", [
    (RequestStatus.CANCELLED, "*Cancelled* by <@U0BOB>"),
    (RequestStatus.APPROVED, "*Approved* by <@U0BOB>"),
    (RequestStatus.DENIED, "*Denied* by <@U0BOB>"),
])
def test_a_settled_waiting_dm_loses_its_button(resource, status, shown):
    _, blocks = submitted_message(a_request(status), resource)
    assert of_type(blocks, "actions") == []
    assert shown in text_of(blocks)


@pytest.mark.parametrize("in_thread, where", [(True, "above"), (False, "in the request")])
def test_a_reminder_mentions_the_approvers_it_is_for(in_thread, where):
    text, _ = reminder_message(a_request(reason=HOSTILE), ["U0BOB", "U0SRE"], 2, in_thread)
    assert text.startswith(":bell: <@U0BOB> <@U0SRE> reminder 2:")
    assert "request #42" in text and where in text and "<!channel>" not in text


def test_the_revoke_form_carries_the_grant_id():
    view = revoke_form(a_grant())
    assert (view["callback_id"], view["private_metadata"]) == (ViewId.REVOKE_FORM, "7")
    [field] = of_type(view["blocks"], "input")
    assert (field["block_id"], field["element"]["action_id"], field["optional"]) == (
        BlockId.REVOKE_REASON, ActionId.REVOKE_REASON_INPUT, True)
