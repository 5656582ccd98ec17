"""The bot's Slack client over real HTTP: connections kept between calls, and replaced
when they cannot carry the next one."""

import socket
import ssl
import threading

import pytest
from slack_sdk.errors import SlackApiError

from accessbot.handlers.client import KeptAliveClient, default_tls, slack_client
from accessbot.handlers.delivery import RESPONSE_URL, Delivery, SlackCall
from accessbot.settings import Settings
from tests.fakes.slack_api import FakeSlack
from tests.fakes.tls import TlsFakeSlack, self_signed, trust_store


def client_for(slack: FakeSlack, timeout: float = 10) -> KeptAliveClient:
    """No retry handlers: a call that fails shows here, not retried out of sight."""
    return KeptAliveClient(token="xoxb-test", base_url=slack.api_url, timeout=timeout,
                           retry_handlers=[])


def test_calls_from_one_thread_share_one_connection():
    with FakeSlack() as slack:
        client = client_for(slack)
        for n in range(5):
            assert client.chat_postMessage(channel="C0X", text=f"m{n}")["ok"]
        assert [c.args["text"] for c in slack.calls("chat.postMessage")] == \
            ["m0", "m1", "m2", "m3", "m4"]
        assert client.connections_opened == 1


def test_each_thread_keeps_its_own_connection():
    with FakeSlack(latency=0.05) as slack:
        client = client_for(slack)
        threads = [threading.Thread(target=lambda: [client.auth_test() for _ in range(3)])
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(slack.calls("auth.test")) == 12
        assert client.connections_opened == 4


def test_an_error_answer_is_read_and_the_connection_kept():
    """429 with Retry-After and 500 reach the caller as the WebClient reports them."""
    with FakeSlack() as slack:
        client = client_for(slack)
        slack.fail("chat.postMessage", "ratelimited")
        with pytest.raises(SlackApiError) as limited:
            client.chat_postMessage(channel="C0X", text="first")
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "1"
        slack.make_chaotic(1.0)  # every call: 429, 500 or 503
        with pytest.raises(SlackApiError) as refused:
            client.chat_postMessage(channel="C0X", text="second")
        assert refused.value.response.status_code in (429, 500, 503)
        slack.make_chaotic(0.0)
        assert client.chat_postMessage(channel="C0X", text="third")["ok"]
        assert client.connections_opened == 1


def test_a_timed_out_call_closes_its_connection():
    """The late answer of a call that timed out is never read as the next call's."""
    with FakeSlack() as slack:
        client = client_for(slack, timeout=0.3)
        slack.hangs, slack.hang_seconds = 1.0, 0.6
        with pytest.raises(TimeoutError):
            client.chat_postMessage(channel="C0X", text="lost")
        slack.hangs = 0.0
        answer = client.chat_postMessage(channel="C0X", text="next")
        assert answer["message"]["text"] == "next"
        assert client.connections_opened == 2


class ClosingServer:
    """HTTP/1.1 that answers one request per connection, with no `Connection: close`,
    then closes it: what a server that drops idle connections looks like to a client."""

    ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              b"Content-Length: 11\r\n\r\n{\"ok\":true}")

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        self.closed = threading.Semaphore(0)  # released as each connection is closed
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/"

    def _serve(self):
        while True:
            connection, _ = self.sock.accept()
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(65536)
                self.requests += 1
                connection.sendall(self.ANSWER)
            self.closed.release()


def test_a_connection_the_server_closed_is_replaced_before_use():
    server = ClosingServer()
    client = KeptAliveClient(token="xoxb-test", base_url=server.url, timeout=5,
                             retry_handlers=[])  # a dead connection used would fail the call
    for _ in range(3):
        assert client.auth_test()["ok"]
        assert server.closed.acquire(timeout=5)  # the server has closed it (not a fixed
        # wait: on a loaded machine its thread could close after the next call began)
    assert server.requests == 3
    assert client.connections_opened == 3


def test_the_bot_builds_this_client():
    settings = Settings(slack_bot_token="xoxb-test", slack_signing_secret="s",
                        slack_app_token=None, slack_api_url="http://127.0.0.1:9/api/",
                        database_url="sqlite://", config_path="accessbot.yaml", port=3000)
    assert isinstance(slack_client(settings), KeptAliveClient)


def test_over_https_the_system_trust_store_is_loaded_once(tmp_path, monkeypatch, catalog):
    """As the bot calls slack.com: no context of its own, the system's certificates (here
    with the fake's added), loaded once in the process for every call, the Web API's and
    a response_url's alike, and one connection kept for the Web API's."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(trust_store(tmp_path, cert)))
    loads = []
    real = ssl.create_default_context
    default_tls.cache_clear()  # loaded from this test's SSL_CERT_FILE
    try:
        with TlsFakeSlack(cert, key) as slack:  # (the server's own context: not counted)
            for name in ("create_default_context", "_create_default_https_context"):  # urllib's
                monkeypatch.setattr(ssl, name, lambda *a, **k: loads.append(a) or real(*a, **k))
            client = client_for(slack)
            assert slack.api_url.startswith("https://") and client.ssl is None
            for n in range(3):
                assert client.chat_postMessage(channel="C0X", text=f"m{n}")["ok"]
            assert client.auth_test()["ok"]
            delivery = Delivery(client, catalog)
            delivery.send(SlackCall(RESPONSE_URL, {
                "url": slack.response_url("k"), "text": "through the hook",
                "response_type": "ephemeral", "replace_original": False}))
            assert len(slack.calls("chat.postMessage")) == 3
            assert [c.args["text"] for c in slack.calls("response_url")] == ["through the hook"]
            assert client.connections_opened == 1
            assert len(loads) == 1
    finally:
        default_tls.cache_clear()  # not this test's trust store for the next
