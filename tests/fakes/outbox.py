"""What the bot owes people, read from the outbox, and delivered by the real sender to a
fake Slack client, for service and runner tests."""

from __future__ import annotations

import itertools
import json
import threading

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from sqlalchemy import select

from accessbot.handlers.delivery import Delivery
from accessbot.handlers.sender import Sender
from accessbot.models import OutboxMessage
from accessbot.services.outbox import Kind


def _dm(channel: str) -> str:
    return "D" + channel[1:] if channel[:1] in ("U", "W") else channel


class FakeWebClient:
    """The two chat methods the delivery uses; records calls, fails on request."""

    base_url = "https://slack.com/api/"  # WebClient's own

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self._failures: list[tuple[str, str | None, str, int, dict]] = []
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.down = False  # every call answers 503

    def fail_next(self, method: str, error: str = "internal_error", status: int = 200,
                  times: int = 1, channel: str | None = None, headers: dict | None = None):
        """The next `times` calls of `method` (to `channel`) get Slack's `error`."""
        self._failures += [(method, channel, error, status, headers or {})] * times

    def chat_postMessage(self, **args):
        return self._call("chat.postMessage", args)

    def chat_update(self, **args):
        return self._call("chat.update", args)

    def files_upload_v2(self, **args):
        return self._call("files.uploadV2", args)

    def posted(self, channel: str | None = None) -> list[dict]:
        return [a for m, a in self.calls if m == "chat.postMessage"
                and (channel is None or a["channel"] == channel)]

    def updated(self) -> list[dict]:
        return [a for m, a in self.calls if m == "chat.update"]

    def _call(self, method: str, args: dict) -> dict:
        if self.down:
            raise _error("service_unavailable", 503, {})
        with self._lock:
            for index, (wanted, channel, error, status, headers) in enumerate(self._failures):
                if wanted == method and channel in (None, args.get("channel")):
                    del self._failures[index]
                    raise _error(error, status, headers)
            self.calls.append((method, args))
            ts = args.get("ts") or f"1764320400.{next(self._ts):06d}"
        return {"ok": True, "channel": _dm(args["channel"]), "ts": ts}


class Mailroom:
    """The outbox of a test database: what is owed, and its delivery."""

    def __init__(self, sessions, catalog, clock):
        self.sessions = sessions
        self.client = FakeWebClient()
        self.sender = Sender(sessions, Delivery(self.client, catalog), clock=clock,
                             owner="sender-1")

    def owed(self, kind: Kind | None = None) -> list[dict]:
        """Every row (whatever its status) of `kind`, oldest first: its args, plus
        `queue`, `status` and `kind`."""
        with self.sessions() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if kind is not None:
                query = query.where(OutboxMessage.kind == kind.value)
            return [{**json.loads(r.args), "queue": r.queue, "status": r.status.value,
                     "kind": r.kind} for r in session.scalars(query)]

    def kinds(self) -> list[str]:
        return [row["kind"] for row in self.owed()]

    def deliver(self) -> int:
        return self.sender.drain()


def _error(error: str, status: int, headers: dict) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="fake", req_args={},
                             data={"ok": False, "error": error}, headers=headers,
                             status_code=status)
    return SlackApiError(f"fake {error}", response)
