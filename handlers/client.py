"""The Slack Web API client every part of the bot uses."""

import functools
import http.client
import io
import select
import ssl
import threading
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from accessbot.settings import Settings


def slack_client(settings: Settings, wait_out_rate_limits: bool = True) -> WebClient:
    client = KeptAliveClient(token=settings.slack_bot_token, base_url=settings.slack_api_url
                             or WebClient.BASE_URL, timeout=10)
    if wait_out_rate_limits:  # lookups (users.lookupByEmail is Tier 3) wait, a few times
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def slack_webhook(url: str, timeout: float) -> WebhookClient:
    """The client for a response_url: Slack's, trusted as the Web API is (default_tls)."""
    return WebhookClient(url, timeout=timeout, ssl=default_tls())


class KeptAliveClient(WebClient):
    """slack_sdk's WebClient, each thread keeping its connection to Slack open between
    calls. The WebClient opens a new one for every call (urllib, `Connection: close`):
    against slack.com a TCP and a TLS handshake per message, and the sender posts
    thousands. Only the transport changes: the WebClient builds each request, retries and
    reads the answer as before. Behind a proxy (HTTPS_PROXY) it goes through urllib.
    Without an `ssl` context of its own it uses `default_tls()`.

    A kept connection that Slack has closed while idle is seen before it is used (readable
    at EOF) and replaced. Any error closes the connection, so an answer that arrives after
    a timeout is never read as the next call's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._local = threading.local()
        self._counting = threading.Lock()
        self.connections_opened = 0  # counted for tests and benchmarks

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict:
        address = urlsplit(url)
        if self.proxy or address.scheme not in ("http", "https"):
            return super()._perform_urllib_http_request_internal(url, req)
        connection = self._connection(address.scheme, address.netloc)
        path = address.path + (f"?{address.query}" if address.query else "")
        try:
            connection.request(req.get_method(), path, body=req.data,
                               headers=dict(req.header_items()))
            response = connection.getresponse()
            body = response.read()
        except http.client.HTTPException as exc:  # not HTTP: as urllib, a URLError
            connection.close()
            raise URLError(exc) from exc
        except BaseException:
            connection.close()
            raise
        if not 200 <= response.status < 300:  # as urllib: the WebClient reads it from here
            raise HTTPError(url, response.status, response.reason, response.msg,
                            io.BytesIO(body))
        if response.msg.get_content_type() != "application/gzip":
            body = body.decode(response.msg.get_content_charset() or "utf-8")
        return {"status": response.status, "headers": response.msg, "body": body}

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        kept = self._local.__dict__.setdefault("connections", {})
        connection = kept.get((scheme, netloc))
        if connection is not None and connection.sock is not None and _closed_by_peer(
                connection.sock):
            connection.close()  # the next request opens a new socket
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(netloc, timeout=self.timeout,
                                                         context=self._tls())
            else:
                connection = http.client.HTTPConnection(netloc, timeout=self.timeout)
            kept[(scheme, netloc)] = connection
        if connection.sock is None:  # the request opens one
            with self._counting:
                self.connections_opened += 1
        return connection

    def _tls(self) -> ssl.SSLContext:
        return self.ssl or default_tls()


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The system's trust store, loaded once in a process, for every client and webhook
    that calls Slack over HTTPS. urllib loads it again for every connection, which is
    most of what a call costs: 20 ms of CPU here, for 145 CA certificates."""
    return ssl.create_default_context()


def _closed_by_peer(sock) -> bool:
    """An idle connection with something to read: the peer closed it (EOF), or sent what
    no request asked for. Either way it cannot carry the next call. (poll, not select:
    select fails on a descriptor numbered 1024 or more.)"""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
