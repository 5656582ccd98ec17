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
