"""The Slack Web API client every part of the bot uses."""

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from accessbot.settings import Settings


def slack_client(settings: Settings, wait_out_rate_limits: bool = True) -> WebClient:
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url
                       or WebClient.BASE_URL, timeout=10)
    if wait_out_rate_limits:  # lookups (users.lookupByEmail is Tier 3) wait, a few times
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client
