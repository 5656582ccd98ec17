"""An HTTP proxy that waits before forwarding: an AWS endpoint as slow as a far region.

Point a client's endpoint URL at ``proxy.url``; every request (method, path, headers,
body) waits ``delay`` seconds, then goes to ``upstream`` and the answer is relayed::

    with LatencyProxy("http://127.0.0.1:5000", delay=0.3) as proxy:
        ...  # run the bot with AWS_ENDPOINT_URL=proxy.url

``faults`` answers a share of calls Throttling or 500 instead; a role ARN in
``refused_roles`` is refused to AssumeRole (AccessDenied), as when its trust policy no
longer names the bot (moto itself lets anyone assume any role).
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus, urlsplit

from tests.fakes.background_server import HttpBackgroundServer

# Headers that describe one connection, not the message: never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "content-length"}


def _field(body: bytes | None, name: str) -> str:
    """A field of an AWS query-protocol call (IAM's, STS's), from its form body."""
    for pair in (body or b"").decode(errors="replace").split("&"):
        if pair.startswith(name + "="):
            return unquote_plus(pair[len(name) + 1:])
    return ""


def _error(code: str, kind: str) -> bytes:
    return (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>injected "
            f"by the test proxy</Message></Error><RequestId>fault</RequestId>"
            f"</ErrorResponse>").encode()


# what an IAM endpoint answers when it throttles, or fails inside
FAULTS = {"Throttling": (400, _error("Throttling", "Sender")),
          "InternalFailure": (500, _error("InternalFailure", "Receiver"))}
# what STS answers when a role's trust policy does not let the caller assume it
ASSUME_REFUSED = (403, _error("AccessDenied", "Sender"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class LatencyProxy(HttpBackgroundServer):
    def __init__(self, upstream: str, delay: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0, faults: float = 0.0, seed: int = 0):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.delay = delay
        self.faults = faults  # the share of calls answered Throttling (400) or 500 instead
        self._random = random.Random(seed)
        self.injected: dict[str, int] = {}
        self.actions: list[str] = []  # the AWS Action of every call received, in order
        self.refused_roles: set[str] = set()  # role ARNs whose AssumeRole is AccessDenied
        self.forwarded = 0
        self._addr = (host, port)
        self._lock = threading.Lock()

    def _make_server(self) -> _Server:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as boto3 expects
            # headers and body leave at once: with Nagle's algorithm the body waited for
            # the client's delayed ACK of the headers, 40 ms more on every call
            disable_nagle_algorithm = True

            def do_GET(self):
                proxy._forward(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

            def log_message(self, *args):
                pass

        return _Server(self._addr, Handler)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LatencyProxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _forward(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else None
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_BY_HOP}
        action = _field(body, "Action")
        with self._lock:
            self.actions.append(action)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            fault = self._random.choice(list(FAULTS)) if self._random.random() < self.faults \
                else None
            if fault:
                self.injected[fault] = self.injected.get(fault, 0) + 1
        if action == "AssumeRole" and _field(body, "RoleArn") in self.refused_roles:
            fault = "AssumeRole refused"
            with self._lock:
                self.injected[fault] = self.injected.get(fault, 0) + 1
        if fault:
            status, data = FAULTS.get(fault, ASSUME_REFUSED)
            req.send_response(status)
            req.send_header("Content-Type", "text/xml")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
            return
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            upstream.request(req.command, req.path, body=body, headers=headers)
            answer = upstream.getresponse()
            status, reason, data = answer.status, answer.reason, answer.read()
            answer_headers = [(k, v) for k, v in answer.getheaders()
                              if k.lower() not in HOP_BY_HOP]
        except OSError as exc:
            status, reason, data = 502, "Bad Gateway", f"proxy: {exc}".encode()
            answer_headers = [("Content-Type", "text/plain")]
        finally:
            upstream.close()
        with self._lock:
            self.forwarded += 1
        req.send_response(status, reason)
        for name, value in answer_headers:
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)
