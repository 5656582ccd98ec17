"""The overview's Block Kit: one builder for `/request-access list` (an ephemeral message)
and for the App Home tab (the same blocks, under a Request access button).

A message holds at most 50 blocks: each section shows a few rows and says how many more
there are; the caps below add up to fewer than 50 with every section full.
"""

from datetime import datetime, timedelta

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement
from slack_sdk.models.views import View

from accessbot.handlers.blocks import (
    Message,
    confirm,
    context,
    dump,
    header,
    message,
    section,
    slack_time,
)
from accessbot.handlers.ids import ActionId
from accessbot.handlers.mrkdwn import escape, mention
from accessbot.models import AccessRequest, Grant, GrantStatus
from accessbot.services.durations import format_duration
from accessbot.services.overview import Overview

MAX_BLOCKS = 50
MY_GRANTS = 6      # two blocks each (the grant, its buttons)
MY_REQUESTS = 6    # one block each (Cancel beside it)
TO_DECIDE = 6      # two blocks each (the request, Approve and Deny)
ALL_GRANTS = 10    # one block each
# headers (4), "and N more" (4), the Home's button (1): 12 + 6 + 12 + 10 + 9 = 49


def overview_blocks(overview: Overview) -> list[Block]:
    """Every section of the overview that has something to show."""
    now = overview.now
    blocks: list[Block] = [header("Your access")]
    if overview.grants:
        blocks += _rows(overview.grants, MY_GRANTS, lambda g: _my_grant(g, now))
    else:
        blocks.append(section("You have no live access."))
    blocks.append(header("Your pending requests"))
    if overview.pending:
        blocks += _rows(overview.pending, MY_REQUESTS, lambda r: [_my_request(r)])
    else:
        blocks.append(section("None."))
    if overview.to_decide:
        blocks.append(header("Waiting for your decision"))
        blocks += _rows(overview.to_decide, TO_DECIDE, _to_decide)
    if overview.all_grants is not None:
        blocks.append(header("All live access (admin)"))
        if overview.all_grants:
            blocks += _rows(overview.all_grants, ALL_GRANTS,
                            lambda g: [section(_anyone_grant(g, now))])
        else:
            blocks.append(section("Nobody has live access."))
    return blocks


def overview_message(overview: Overview) -> Message:
    """The answer to `/request-access list`."""
    text = (f"Your access: {len(overview.grants)} live, {len(overview.pending)} pending"
            + (f", {len(overview.to_decide)} waiting for your decision"
               if overview.to_decide else ""))
    return message(text, overview_blocks(overview))


def home_view(overview: Overview) -> dict:
    """The App Home tab: a Request access button, then the overview."""
    button = ActionsBlock(elements=[ButtonElement(
        text="Request access", action_id=ActionId.OPEN_REQUEST_FORM, value="0",  # values are ids
        style="primary")])
    return View(type="home", blocks=dump([button, *overview_blocks(overview),
                                          context(f"Updated {slack_time(overview.now)}")])
                ).to_dict()


def time_left(grant: Grant, now: datetime) -> str:
    """How long the grant has left, as its holder reads it."""
    if grant.status is GrantStatus.PENDING:
        return "being put in place"
    left = grant.expires_at - now
    if left.total_seconds() < 60:
        return f"ending now ({slack_time(grant.expires_at)})"
    minutes = timedelta(minutes=int(left.total_seconds() // 60))  # seconds: noise here
    return f"{format_duration(minutes)} left, until {slack_time(grant.expires_at)}"


def _rows(items: list, cap: int, render) -> list[Block]:
    blocks: list[Block] = []
    for item in items[:cap]:
        blocks += render(item)
    if len(items) > cap:
        blocks.append(context(f"…and {len(items) - cap} more."))
    return blocks


def _my_grant(grant: Grant, now: datetime) -> list[Block]:
    name = escape(grant.resource)
    row = section(f"*{name}*: {time_left(grant, now)}")
    if grant.status is not GrantStatus.ACTIVE:
        return [row]
    return [row, ActionsBlock(elements=[
        ButtonElement(text="I'm done, revoke now", action_id=ActionId.END_GRANT,
                      value=str(grant.id),
                      confirm=confirm("End your access now?", f"This removes {name} at once.",
                                      "Revoke now", "Keep it")),
        ButtonElement(text="Ask for more time", action_id=ActionId.EXTEND_GRANT,
                      value=str(grant.id)),
    ])]


def _asked(request: AccessRequest) -> str:
    duration = format_duration(request.duration)
    name = escape(request.resource)
    if request.extends_grant_id is not None:
        return f"*{duration} more* on *{name}*"
    return f"*{name}* for *{duration}*"


def _my_request(request: AccessRequest) -> Block:
    text = (f"#{request.id}: {_asked(request)}, asked {slack_time(request.created_at)}; "
            f"expires undecided at {slack_time(request.decide_by)}")
    block = section(text)
    block.accessory = ButtonElement(
        text="Cancel", action_id=ActionId.CANCEL_REQUEST, value=str(request.id),
        confirm=confirm("Cancel this request?", f"Request #{request.id} will be withdrawn.",
                        "Cancel it", "Keep it"))
    return block


def _to_decide(request: AccessRequest) -> list[Block]:
    return [
        section(f"#{request.id}: {mention(request.requester_id)} asks for {_asked(request)}\n"
                f">{escape(' '.join(request.reason.split()))}"),
        ActionsBlock(elements=[
            ButtonElement(text="Approve", action_id=ActionId.APPROVE, value=str(request.id),
                          style="primary"),
            ButtonElement(text="Deny", action_id=ActionId.DENY, value=str(request.id),
                          style="danger"),
        ]),
    ]


def _anyone_grant(grant: Grant, now: datetime) -> str:
    return f"{mention(grant.requester_id)}: *{escape(grant.resource)}*, {time_left(grant, now)}"
