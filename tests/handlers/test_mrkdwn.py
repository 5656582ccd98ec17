"""Escaping, mentions and cuts for mrkdwn, with hypothesis over arbitrary text."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accessbot.handlers.errors import user_message
from accessbot.handlers.mrkdwn import cut, escape, escape_except_mentions, mention
from accessbot.services.errors import Conflict, InvalidInput

BOUNDED = settings(max_examples=200, deadline=None)
SLACKISH = st.text(alphabet=st.sampled_from("<>&@!#|:/.;ampltg UWCX01 \n"), max_size=60)


def test_escape_replaces_the_three_characters_slack_reads_as_markup():
    assert escape("a & <b> <!channel>") == "a &amp; &lt;b&gt; &lt;!channel&gt;"


@pytest.mark.parametrize("user_id, shown", [
    ("U0ALICE", "<@U0ALICE>"), ("W0GRID", "<@W0GRID>"), ("U0X> <!here", "U0X&gt; &lt;!here"),
    ("alice@example.com", "alice@example.com"), (None, ""), ("u0alice", "u0alice"),
])
def test_a_mention_only_for_a_slack_user_id(user_id, shown):
    assert mention(user_id) == shown


def test_service_text_keeps_its_user_and_channel_mentions_only():
    text = "by <@U0BOB> in <#C0SEC>, not <!channel>, <@U0BOB|bob> or <https://x|y>"
    assert escape_except_mentions(text) == (
        "by <@U0BOB> in <#C0SEC>, not &lt;!channel&gt;, &lt;@U0BOB|bob&gt; or "
        "&lt;https://x|y&gt;")


def test_an_error_that_repeats_what_someone_typed_is_escaped():
    assert user_message(InvalidInput("There is no resource called '<!channel>'.")) == \
        ":warning: There is no resource called '&lt;!channel&gt;'."
    assert "<@U0BOB>" in user_message(Conflict("Request #1 was already approved by <@U0BOB>."))


@BOUNDED
@given(SLACKISH)
def test_escaped_text_has_no_markup_left(text):
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert re.sub(r"&(amp|lt|gt);", "", escaped).count("&") == 0


@BOUNDED
@given(SLACKISH)
def test_only_well_formed_mentions_survive_service_text(text):
    for token in re.findall(r"<[^<>]*>", escape_except_mentions(text)):
        assert re.fullmatch(r"<(@[UW]|#[CG])[A-Z0-9]{2,31}>", token)


@BOUNDED
@given(SLACKISH, st.integers(min_value=2, max_value=80))
def test_a_cut_fits_and_never_breaks_an_escape_or_a_mention(text, limit):
    shown = cut(escape_except_mentions(text), limit)
    assert len(shown) <= limit
    body = shown.removesuffix("…")
    assert re.sub(r"&(amp|lt|gt);", "", body).count("&") == 0
    assert body.count("<") == body.count(">")
