"""A small local fake of Slack's Socket Mode WebSocket server.

The app calls ``apps.connections.open`` on the Web API (answer it with
``FakeSlack(socket_mode_url=fake.url)``), opens a WebSocket to that URL, and is greeted
with ``hello``. The test then pushes envelopes as Slack would and reads the app's
acknowledgements::

    with FakeSocketMode() as socket_mode, FakeSlack(socket_mode_url=socket_mode.url) as slack:
        ...  # run the bot with SLACK_APP_TOKEN=xapp-... and SLACK_API_URL=slack.api_url
        socket_mode.wait_connected()
        envelope_id = socket_mode.send_envelope("slash_commands", {...form fields...})
        ack = socket_mode.wait_for_ack(envelope_id)  # {"envelope_id": ..., "payload": {...}}
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakes.background_server import BackgroundServer

APP_ID = "A0ACCESSBOT"
# Interactive payloads whose answer Slack reads from the acknowledgement.
_ANSWERED_INTERACTIONS = ("view_submission", "block_suggestion")


class FakeSocketMode(BackgroundServer):
    """Slack's side of Socket Mode: hello, envelopes out, acknowledgements in.

    Envelopes go to the newest open connection, as Slack sends each envelope to one of
    the app's connections. The server pings every ``ping_interval`` seconds, so a client
    that stops answering pings is dropped, as Slack would drop it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ping_interval: float = 5.0):
        self._addr = (host, port)
        self.ping_interval = ping_interval
        self.ticket = uuid.uuid4().hex
        self._changed = threading.Condition()
        self._connections: list[ServerConnection] = []
        self._acks: dict[str, dict] = {}
        self.received: list[dict] = []  # every message from the app, in order
        self.paths: list[str] = []  # the request path of every connection, in order

    def _make_server(self) -> Server:
        # its shutdown() closes open connections with 1001, going away
        return serve(self._serve_connection, *self._addr, compression=None,
                     ping_interval=self.ping_interval, ping_timeout=5, close_timeout=2)

    @property
    def url(self) -> str:
        """What ``apps.connections.open`` answers: ws:// (the client uses TLS only on 443)."""
        assert self._server, "FakeSocketMode is not started"
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket={self.ticket}&app_id={APP_ID}"

    # -- the test's side ---------------------------------------------------
    @property
    def connections(self) -> int:
        """How many connections are open now."""
        with self._changed:
            return len(self._connections)

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the app holds an open connection (and has been sent ``hello``)."""
        self._wait(lambda: self._connections, timeout, "no Socket Mode connection")

    def ping(self, timeout: float = 5.0) -> None:
        """Ping the app's newest connection and wait for its pong, as Slack's keepalive does."""
        with self._changed:
            if not self._connections:
                raise ConnectionError("no Socket Mode connection to ping")
            connection = self._connections[-1]
        if not connection.ping().wait(timeout):
            raise TimeoutError(f"the app did not answer a ping within {timeout}s")

    def send_envelope(self, type: str, payload: dict[str, Any], *,
                      accepts_response_payload: bool | None = None) -> str:
        """Push one envelope (slash_commands, interactive, events_api); return its id."""
        if accepts_response_payload is None:
            accepts_response_payload = (type == "slash_commands" or payload.get("type")
                                        in _ANSWERED_INTERACTIONS)
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": type, "payload": payload,
                    "accepts_response_payload": accepts_response_payload}
        with self._changed:
            if not self._connections:
                raise ConnectionError("no Socket Mode connection to send the envelope on")
            connection = self._connections[-1]
        connection.send(json.dumps(envelope))
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict:
        """The app's acknowledgement of one envelope: {"envelope_id", optional "payload"}."""
        return self._wait(lambda: self._acks.get(envelope_id), timeout,
                          f"no acknowledgement of envelope {envelope_id}")

    def _wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what} after {timeout}s; received from the app: "
                                       f"{self.received[-5:]!r}")
                self._changed.wait(left)
            return result

    # -- the server's side (one thread per connection) ----------------------
    def _serve_connection(self, connection: ServerConnection) -> None:
        with self._changed:
            self.paths.append(connection.request.path)
            connection.send(json.dumps({
                "type": "hello", "num_connections": len(self._connections) + 1,
                "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            }))
            self._connections.append(connection)
            self._changed.notify_all()
        try:
            for raw in connection:
                message = json.loads(raw)
                with self._changed:
                    self.received.append(message)
                    if "envelope_id" in message:
                        self._acks[message["envelope_id"]] = message
                    self._changed.notify_all()
        except ConnectionClosed:
            pass  # the app went away (the bot stopped or crashed): nothing to answer
        finally:
            with self._changed:
                self._connections.remove(connection)
                self._changed.notify_all()
