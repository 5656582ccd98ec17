"""An HTTP proxy that waits before forwarding: an AWS endpoint as slow as a far region.

Point a client's endpoint URL at ``proxy.url``; every request (method, path, headers,
body) waits ``delay`` seconds, then goes to ``upstream`` and the answer is relayed::

    with LatencyProxy("http://127.0.0.1:5000", delay=0.3) as proxy:
        ...  # run the bot with AWS_ENDPOINT_URL=proxy.url
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.fakes.background_server import HttpBackgroundServer

# Headers that describe one connection, not the message: never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "content-length"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class LatencyProxy(HttpBackgroundServer):
    def __init__(self, upstream: str, delay: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.delay = delay
        self.forwarded = 0
        self._addr = (host, port)
        self._lock = threading.Lock()

    def _make_server(self) -> _Server:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as boto3 expects

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
        if self.delay:
            time.sleep(self.delay)
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
