"""Text for Slack's mrkdwn: what people typed, escaped once; mentions only of checked
ids; and Block Kit's length limits, cut without breaking an escape or a mention.

In mrkdwn `<...>` is markup: `<!channel>` pings a channel, `<https://x|Approve>` is a
link that says anything. Slack asks for `&`, `<` and `>` to be escaped in any text that
is not meant as markup; that happens here, at the edge, and nowhere in services/.
"""

import re

from accessbot.handlers.payloads import CHANNEL_ID, USER_ID

SECTION_TEXT = 3000  # a section's text, a context's mrkdwn element
FIELD_TEXT = 2000  # one of a section's fields
HEADER_TEXT = 150  # a header's plain text
CONFIRM_TEXT = 300  # a confirm dialog's text
OPTION_TEXT = 75  # a select option's label and description
MESSAGE_TEXT = 4000  # a message's fallback `text` (Slack truncates at 40,000; 4,000 reads)
ELLIPSIS = "…"

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ESCAPED_MENTION = re.compile(r"&lt;(@[UW][A-Z0-9]{2,31}|#[CG][A-Z0-9]{2,31})&gt;")


def escape(text: str) -> str:
    """Text shown as written: no mention, link or ping inside it works."""
    return text.translate(_ESCAPES)


def mention(user_id: str | None) -> str:
    """A user mention, only for what is a Slack user id; anything else shown as text."""
    if user_id is not None and USER_ID.fullmatch(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "")


def channel_mention(channel_id: str) -> str:
    return f"<#{channel_id}>" if CHANNEL_ID.fullmatch(channel_id) else escape(channel_id)


def escape_except_mentions(text: str) -> str:
    """Text from services/, which mentions people and channels as `<@U...>` and
    `<#C...>` and is otherwise plain: escaped, with those mentions of well-formed ids put
    back (no `<!channel>`, no link)."""
    return _ESCAPED_MENTION.sub(r"<\1>", escape(text))


def cut(text: str, limit: int) -> str:
    """At most `limit` characters; a cut never ends inside an `&...;` or a `<...>`."""
    if len(text) <= limit:
        return text
    head = text[:limit - len(ELLIPSIS)]
    for opener, closer in (("&", ";"), ("<", ">")):
        start = head.rfind(opener)
        if start != -1 and closer not in head[start:]:
            head = head[:start]
    return head + ELLIPSIS
