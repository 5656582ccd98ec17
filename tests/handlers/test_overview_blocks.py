"""The overview's builder (`/request-access list`, App Home), on rows built in memory."""

import json
from datetime import timedelta

from accessbot.handlers.ids import ActionId
from accessbot.handlers.overview_blocks import (
    MAX_BLOCKS,
    home_view,
    overview_message,
    time_left,
)
from accessbot.models import GrantStatus
from accessbot.services.overview import Overview
from tests.handlers.test_blocks import NOW, a_grant, a_request


def actions_of(blocks: list[dict]) -> list[tuple[str, str]]:
    found = []
    for block in blocks:
        elements = block.get("elements", []) if block["type"] == "actions" else \
            [block["accessory"]] if "accessory" in block else []
        found += [(e["action_id"], e["value"]) for e in elements if e["type"] == "button"]
    return found


def an_overview(grants=(), pending=(), to_decide=(), all_grants=None) -> Overview:
    return Overview("U0ALICE", NOW, list(grants), list(pending), list(to_decide),
                    None if all_grants is None else list(all_grants))


def test_time_left_in_minutes_and_the_end_time():
    grant = a_grant(expires_at=NOW + timedelta(hours=1, minutes=29, seconds=59))
    assert time_left(grant, NOW).startswith("1h29m left, until <!date^")
    assert time_left(a_grant(expires_at=NOW + timedelta(seconds=30)), NOW).startswith(
        "ending now")
    assert time_left(a_grant(GrantStatus.PENDING), NOW) == "being put in place"


def test_each_section_has_its_buttons():
    text, blocks = overview_message(an_overview(
        grants=[a_grant(id=7), a_grant(GrantStatus.PENDING, id=8)],
        pending=[a_request(id=42)],
        to_decide=[a_request(id=43, requester_id="U0CAROL", reason="look *here*\nnow")]))
    assert actions_of(blocks) == [
        (ActionId.END_GRANT, "7"), (ActionId.EXTEND_GRANT, "7"),  # a grant being applied: none
        (ActionId.CANCEL_REQUEST, "42"),
        (ActionId.APPROVE, "43"), (ActionId.DENY, "43")]
    body = json.dumps(blocks)
    assert "2h left" in body and "<@U0CAROL>" in body and "look *here* now" in body
    assert "All live access" not in body  # not an admin
    assert text == "Your access: 2 live, 1 pending, 1 waiting for your decision"


def test_nothing_to_show_says_so():
    _, blocks = overview_message(an_overview(all_grants=[]))
    body = json.dumps(blocks)
    assert "You have no live access." in body and "Nobody has live access." in body
    assert actions_of(blocks) == []


def test_full_sections_stay_within_block_kits_limits_and_say_how_many_more():
    many = 300
    _, blocks = overview_message(an_overview(
        grants=[a_grant(id=i) for i in range(many)],
        pending=[a_request(id=i) for i in range(many)],
        to_decide=[a_request(id=i, requester_id="U0CAROL") for i in range(many)],
        all_grants=[a_grant(id=i) for i in range(many)]))
    assert len(blocks) <= MAX_BLOCKS
    more = [b for b in blocks if b["type"] == "context"]
    assert len(more) == 4 and all("more." in json.dumps(b) for b in more)
    view = home_view(an_overview(
        grants=[a_grant(id=i) for i in range(many)],
        pending=[a_request(id=i) for i in range(many)],
        to_decide=[a_request(id=i, requester_id="U0CAROL") for i in range(many)],
        all_grants=[a_grant(id=i) for i in range(many)]))
    assert len(view["blocks"]) <= MAX_BLOCKS + 1  # Home allows 100


def test_home_is_the_overview_under_a_request_access_button():
    view = home_view(an_overview(grants=[a_grant(id=7)]))
    assert view["type"] == "home"
    assert actions_of(view["blocks"])[0] == (ActionId.OPEN_REQUEST_FORM, "0")
    assert (ActionId.END_GRANT, "7") in actions_of(view["blocks"])
