"""Slack lookups the services need (services.ports.Profiles and the hygiene owners)."""

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from accessbot.services.ports import LookupFailed

NOT_FOUND = frozenset({"user_not_found", "users_not_found"})


class SlackProfiles:
    def __init__(self, client: WebClient):
        self.client = client

    def email_of(self, slack_user_id: str) -> str | None:
        answer = self._call(self.client.users_info, user=slack_user_id)
        return ((answer or {}).get("user") or {}).get("profile", {}).get("email")

    def user_for_email(self, email: str) -> str | None:
        answer = self._call(self.client.users_lookupByEmail, email=email)
        return ((answer or {}).get("user") or {}).get("id")

    @staticmethod
    def _call(method, **args) -> dict | None:
        """Slack's answer; None for a definite "no such user"; LookupFailed for no answer."""
        try:
            return method(**args).data
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if error in NOT_FOUND:
                return None
            raise LookupFailed(f"Slack said {error or exc.response.status_code}") from exc
        except (SlackClientError, OSError, ValueError) as exc:
            raise LookupFailed(f"Slack unreachable: {exc}") from exc


class SlackNames:
    """Slack ids as people read them, for `accessbot audit`: a user's name, a channel's
    #name; the id itself when Slack does not say (no token, no answer). Asked once each."""

    def __init__(self, client: WebClient | None):
        self.client = client
        self._known: dict[str, str] = {}

    def __call__(self, slack_id: str) -> str:
        if slack_id not in self._known:
            self._known[slack_id] = self._lookup(slack_id) or slack_id
        return self._known[slack_id]

    def _lookup(self, slack_id: str) -> str | None:
        if self.client is None:
            return None
        try:
            if slack_id[:1] in ("C", "G"):
                name = self.client.conversations_info(channel=slack_id)["channel"].get("name")
                return f"#{name}" if name else None
            user = self.client.users_info(user=slack_id)["user"]
        except (SlackClientError, OSError, ValueError):
            return None
        profile = user.get("profile") or {}
        return profile.get("display_name") or user.get("real_name") or user.get("name")
