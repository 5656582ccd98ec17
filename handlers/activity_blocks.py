"""Block Kit builder of what a grant was used for (services/activity.py's Summary).

Everything in a summary came from AWS or the configuration (event names, error codes,
IP addresses, user names): escaped here, and each block cut to Block Kit's limits.
"""

from datetime import datetime

from slack_sdk.models.blocks import Block

from accessbot.handlers.blocks import Message, context, message, section, slack_time
from accessbot.handlers.mrkdwn import escape, mention
from accessbot.models import Grant
from accessbot.services.activity import Listed, Summary

SERVICES_SHOWN = 12


def activity_summary(grant: Grant, summary: Summary, to_requester: bool = False) -> Message:
    """The summary, as a thread reply under the request (or the requester's DM)."""
    who = "you" if to_requester else mention(grant.requester_id)
    start, end = datetime.fromisoformat(summary.start), datetime.fromisoformat(summary.end)
    title = (f":mag: What {who} did with *{escape(grant.resource)}* (grant #{grant.id}, as "
             f"`{escape(summary.user_name)}`, {slack_time(start)} to {slack_time(end)}), "
             "from CloudTrail:")
    if not summary.events:
        text = f"{title}\nNo events recorded." + _regions(summary)
        return message(text, [section(text), *_links(summary)])
    at_least = "at least " if summary.truncated else ""
    services = ", ".join(f"{escape(name)} {count}" for name, count
                         in list(summary.by_service.items())[:SERVICES_SHOWN])
    if len(summary.by_service) > SERVICES_SHOWN:
        services += f", and {len(summary.by_service) - SERVICES_SHOWN} more services"
    lines = [title, f"*{at_least}{summary.events} events*: {services}",
             f"*Changes* (not read-only): {summary.writes}",
             f"*Access denied*: {summary.denied}",
             f"*Console sign-ins*: {summary.sign_ins}",
             "*Source IPs*: " + (", ".join(f"`{escape(ip)}`" for ip in summary.source_ips)
                                 or "none")]
    blocks: list[Block] = [section("\n".join(lines))]
    if summary.first_writes:
        blocks.append(section(_listing("Changes", summary.writes, summary.first_writes)))
    if summary.first_denied:
        blocks.append(section(_listing("Denied", summary.denied, summary.first_denied)))
    blocks += _links(summary)
    fallback = (f"What {who} did with {escape(grant.resource)} (grant #{grant.id}): "
                f"{at_least}{summary.events} events, {summary.writes} changes, "
                f"{summary.denied} denied")
    return message(fallback, blocks)


def _listing(what: str, total: int, shown: list[Listed]) -> str:
    lines = [f"*{what}*" + (f" (first {len(shown)} of {total})" if total > len(shown) else "")
             + ":"]
    lines += [f"• {escape(e.time)} `{escape(e.name)}` {escape(e.region)}"
              + (f" ({escape(e.error)})" if e.error else "") for e in shown]
    return "\n".join(lines)


def _regions(summary: Summary) -> str:
    return f" (Event history of {', '.join(escape(r) for r in summary.links)})" \
        if summary.links else ""


def _links(summary: Summary) -> list[Block]:
    if not summary.links:
        return []
    # the links are ours (services/activity.py, the user name URL-quoted): no | < > inside
    return [context(" · ".join(f"<{url}|Event history in {escape(region)}>"
                               for region, url in summary.links.items()))]
