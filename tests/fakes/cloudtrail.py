"""A small local fake of CloudTrail's LookupEvents (moto has none), over its JSON 1.1
protocol, for boto3 with AWS_ENDPOINT_URL_CLOUDTRAIL (or endpoint_url) pointed at it::

    with FakeCloudTrail() as trail:
        trail.add("alice", at, "s3.amazonaws.com", "PutObject", read_only=False)
        trail.throttle(2)  # the next two calls answer ThrottlingException
        ...  # boto3.client("cloudtrail", endpoint_url=trail.url).lookup_events(...)

It answers the seeded events of the Username lookup attribute within StartTime..EndTime,
newest first as CloudTrail does, MaxResults at a time with a NextToken; every call is
recorded (time, body, answer status).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.background_server import HttpBackgroundServer

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic()
    body: dict
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class FakeCloudTrail(HttpBackgroundServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._addr = (host, port)
        self._lock = threading.RLock()
        self._events: list[dict] = []
        self._throttled = 0
        self.calls: list[Call] = []

    def _make_server(self) -> _Server:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                fake._handle(self)

            def log_message(self, *args):
                pass

        return _Server(self._addr, Handler)

    @property
    def url(self) -> str:
        assert self._server, "FakeCloudTrail is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- seeding -------------------------------------------------------------------------

    def add(self, user_name: str, at: datetime, event_source: str, event_name: str, *,
            read_only: bool = True, error_code: str | None = None,
            source_ip: str = "198.51.100.7", event_type: str = "AwsApiCall",
            region: str = "us-east-1") -> None:
        detail = {"eventVersion": "1.09", "userIdentity": {"type": "IAMUser",
                                                           "userName": user_name},
                  "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventSource": event_source,
                  "eventName": event_name, "awsRegion": region, "sourceIPAddress": source_ip,
                  "readOnly": read_only, "eventType": event_type,
                  "recipientAccountId": "123456789012"}
        if error_code:
            detail["errorCode"] = error_code
        with self._lock:
            self._events.append({
                "EventId": str(uuid.uuid4()), "EventName": event_name,
                "ReadOnly": "true" if read_only else "false", "EventTime": at.timestamp(),
                "EventSource": event_source, "Username": user_name, "Resources": [],
                "CloudTrailEvent": json.dumps(detail)})

    def throttle(self, calls: int) -> None:
        """The next `calls` calls answer 400 ThrottlingException."""
        with self._lock:
            self._throttled = calls

    def answered(self) -> list[Call]:
        """The calls that got events (not throttled)."""
        return [c for c in self.calls if c.status == 200]

    # -- serving ---------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"{}")
        if request.headers.get("X-Amz-Target") != TARGET:
            return self._answer(request, body, 400, {
                "__type": "UnknownOperationException",
                "message": f"not faked: {request.headers.get('X-Amz-Target')}"})
        with self._lock:
            if self._throttled:
                self._throttled -= 1
                return self._answer(request, body, 400, {"__type": "ThrottlingException",
                                                         "message": "Rate exceeded"})
            found = self._lookup(body)
        start = int(body.get("NextToken") or 0)
        size = int(body.get("MaxResults") or 50)
        page = {"Events": found[start:start + size]}
        if start + size < len(found):
            page["NextToken"] = str(start + size)
        self._answer(request, body, 200, page)

    def _lookup(self, body: dict) -> list[dict]:
        users = [a["AttributeValue"] for a in body.get("LookupAttributes", [])
                 if a["AttributeKey"] == "Username"]
        start = body.get("StartTime", 0)
        end = body.get("EndTime", datetime.now(UTC).timestamp())
        found = [e for e in self._events if start <= e["EventTime"] <= end
                 and (not users or e["Username"] in users)]
        return sorted(found, key=lambda e: e["EventTime"], reverse=True)

    def _answer(self, request, body: dict, status: int, answer: dict) -> None:
        data = json.dumps(answer).encode()
        with self._lock:
            self.calls.append(Call(time.monotonic(), body, status))
        request.send_response(status)
        request.send_header("Content-Type", "application/x-amz-json-1.1")
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
