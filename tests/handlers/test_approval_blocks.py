"""Block Kit builders for the approval policy: N-of-M progress on every copy, Approve for
less (its button, its modal, and the approved duration in every message)."""

from datetime import timedelta

import pytest

from accessbot.handlers.blocks import (
    approve_less_form,
    approve_less_metadata,
    decision_text,
    grant_message,
    request_message,
    submitted_text,
)
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import RequestApproval, RequestStatus
from accessbot.services.errors import InvalidInput
from tests.factories import make_catalog
from tests.handlers.test_blocks import NOW, a_grant, a_request, of_type, text_of


@pytest.fixture
def two_of_three():
    return make_catalog({"prod-admins": {"approvers": ["U0BOB", "U0DAVE", "S0SRE"],
                                         "approvals_required": 2}}).get("prod-admins")


def approved_by(*who: str, duration: timedelta | None = None) -> list[RequestApproval]:
    return [RequestApproval(approver=w, at=NOW, duration=duration) for w in who]


def buttons(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for a in of_type(blocks, "actions") for e in a["elements"]]


def test_a_first_approval_of_two_shows_and_keeps_the_buttons(two_of_three):
    request = a_request(approvals=approved_by("U0BOB"))

    text, blocks = request_message(request, two_of_three)

    assert "1 of 2 approvals: <@U0BOB>" in text_of(blocks)
    assert buttons(blocks) == [ActionId.APPROVE, ActionId.APPROVE_LESS, ActionId.DENY]
    assert "waiting for approval" in text


def test_no_approval_yet_shows_none_of_two(two_of_three):
    _, blocks = request_message(a_request(), two_of_three)
    assert "0 of 2 approvals" in text_of(blocks)


def test_one_approval_decides_shows_no_count(catalog):
    _, blocks = request_message(a_request(approvals=approved_by("U0BOB")),
                                catalog.get("prod-admins"))
    assert "approvals" not in text_of(blocks)


def test_the_last_approval_removes_the_buttons_and_shows_both(two_of_three):
    request = a_request(RequestStatus.APPROVED, decided_by="U0DAVE",
                        approvals=approved_by("U0BOB", "U0DAVE"))

    _, blocks = request_message(request, two_of_three)

    assert buttons(blocks) == []
    body = text_of(blocks)
    assert "2 of 2 approvals: <@U0BOB>, <@U0DAVE>" in body
    assert "*Approved* by <@U0DAVE>" in body


def test_an_approval_for_less_is_shown_on_the_copy_the_thread_and_the_grant_dm(catalog):
    request = a_request(RequestStatus.APPROVED, approved_duration=timedelta(minutes=30),
                        approvals=approved_by("U0BOB", duration=timedelta(minutes=30)))

    _, blocks = request_message(request, catalog.get("prod-admins"))
    assert "approved for 30m of the 2h asked" in text_of(blocks)
    assert "approved for 30m of the 2h asked" in decision_text(request)
    text, _ = grant_message(a_grant(request=request))
    assert "Approved for 30m of the 2h asked" in text


def test_a_partial_approval_for_less_says_so_while_pending(two_of_three):
    request = a_request(approved_duration=timedelta(minutes=30),
                        approvals=approved_by("U0BOB", duration=timedelta(minutes=30)))

    _, blocks = request_message(request, two_of_three)

    assert "1 of 2 approvals: <@U0BOB> (so far for 30m of the 2h asked)" in text_of(blocks)


def test_an_approval_as_asked_says_nothing_of_less(catalog):
    request = a_request(RequestStatus.APPROVED)
    assert "asked" not in decision_text(request)
    assert "asked" not in grant_message(a_grant(request=request))[0]


def test_an_extension_has_no_approve_for_less(catalog):
    _, blocks = request_message(a_request(extends_grant_id=7), catalog.get("prod-admins"))
    assert buttons(blocks) == [ActionId.APPROVE, ActionId.DENY]


def test_the_modal_asks_for_at_most_the_duration_asked():
    view = approve_less_form(a_request())

    assert (view["callback_id"], view["private_metadata"]) == (ViewId.APPROVE_LESS_FORM,
                                                               "42:7200")
    [field] = of_type(view["blocks"], "input")
    assert field["block_id"] == BlockId.DURATION
    assert field["element"]["action_id"] == ActionId.DURATION_INPUT
    assert "at most 2h" in field["hint"]["text"]
    assert approve_less_metadata(view["private_metadata"]) == (42, timedelta(hours=2))
    with pytest.raises(InvalidInput):
        approve_less_metadata("42")


def test_the_requester_hears_who_must_approve_and_how_many(two_of_three):
    text = submitted_text(a_request(), two_of_three)
    assert "<@U0BOB>, <@U0DAVE>, <!subteam^S0SRE> (2 approvals needed)" in text
