"""The web process's HTTP side (handlers/web.py) over a real socket, served as the bot
serves it: routing, the boundary, and each Slack request answered only once the tasks
its listener handed over are committed."""

import contextlib
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from accessbot.handlers import web as web_module
from accessbot.handlers.boundary import MAX_BODY, SlackEndpoint
from accessbot.handlers.handoff import NOT_RECORDED, DurableHandoff
from accessbot.handlers.tasks import Task, decode_args
from accessbot.handlers.web import WebApp, make_server
from accessbot.models import InboxStatus, InboxTask, make_engine, make_session_factory
from accessbot.services import metrics
from tests.factories import REQUESTER, RESOURCE
from tests.handlers.slack_requests import SECRET, Handoffs, asgi_get, command, make_app, sign


@contextlib.contextmanager
def serving(web):
    """The bot's HTTP server (handlers/web.make_server) for `web`, on a free port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = make_server(web, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@pytest.fixture
def web_server(catalog):
    handoffs = Handoffs()
    web = WebApp(SlackEndpoint(make_app(catalog, handoffs), SECRET), None,
                 ready=lambda: {"worker": True, "database": True})
    with serving(web) as port:
        yield port, handoffs


def exchange(port: int, head: list[str], body: bytes = b"") -> tuple[int, bytes]:
    """(status, body) of one request on a connection of its own."""
    raw = "\r\n".join([*head, "Connection: close", "", ""]).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer.split(b"\r\n\r\n", 1)[1]


def http(port: int, head: list[str], body: bytes = b"") -> int:
    return exchange(port, head, body)[0]


def signed_post(body: bytes, **extra: str) -> list[str]:
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "Content-Length": str(len(body)), "X-Slack-Request-Timestamp": timestamp,
               "X-Slack-Signature": sign(body, timestamp), **extra}
    return ["POST /slack/events HTTP/1.1", "Host: x",
            *(f"{name}: {value}" for name, value in headers.items() if value)]


def test_the_web_app_answers_slack_through_the_boundary(web_server, caplog):
    port, handoffs = web_server
    body = command("prod-admins 1h fix the payload parser").encode()
    assert http(port, signed_post(body), body) == 200
    assert len(handoffs.tasks) == 1
    assert http(port, signed_post(body, **{"X-Slack-Signature": "v0=00"}), body) == 401
    assert http(port, signed_post(b"payload=%5B1%5D"), b"payload=%5B1%5D") == 400
    big = b"x" * (MAX_BODY + 1)  # refused on its head, before any of it is sent
    assert http(port, signed_post(big)) == 413
    assert http(port, ["GET /healthz HTTP/1.1", "Host: x"]) == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_no_websocket_is_opened_and_the_library_is_never_loaded(web_server, caplog):
    """Slack only POSTs to us: an upgrade is answered as plain HTTP, never 101, with
    nothing logged, and the server does not load `websockets` (uvicorn's default would)."""
    import subprocess
    import sys

    port, handoffs = web_server
    upgrade = ["GET /slack/events HTTP/1.1", "Host: x", "Upgrade: websocket",
               "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Version: 13"]
    status, _ = exchange(port, upgrade)
    assert status == 404 and handoffs.tasks == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    code = ("import sys; from accessbot.handlers.web import make_server; "
            "make_server(None, '127.0.0.1', 0).config.load(); "
            "print(any(m.split('.')[0] == 'websockets' for m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "False"


def test_a_header_named_with_an_underscore_does_not_stand_for_one_with_a_dash(web_server):
    port, handoffs = web_server
    body = command("prod-admins 1h deploy the hotfix").encode()
    head = signed_post(body)
    spoofed = [line.replace("X-Slack-Signature", "X_Slack_Signature") for line in head]
    assert http(port, spoofed, body) == 401
    assert handoffs.tasks == []


def test_liveness_readiness_and_metrics(sessions, engine, catalog):
    from accessbot.handlers import health

    worker_up = {"value": True}
    web = WebApp(SlackEndpoint(make_app(catalog, Handoffs()), SECRET), None,
                 ready=lambda: health.ready(lambda: worker_up["value"], lambda: True, engine),
                 metrics=lambda: health.metrics_text(engine))

    assert asgi_get(web, "/healthz")[0] == 200
    assert asgi_get(web, "/readyz") == (200, '{"ok": true, "worker": true, "slack": true, '
                                             '"database": true}')
    worker_up["value"] = False
    status, body = asgi_get(web, "/readyz")
    assert status == 503 and '"worker": false' in body
    assert asgi_get(web, "/healthz")[0] == 200  # alive, though not ready
    status, body = asgi_get(web, "/metrics")
    assert status == 200
    assert "accessbot_outbox_depth 0.0" in body and "accessbot_inbox_oldest_seconds" in body



# -- the durable hand-off over HTTP ------------------------------------------------------

class HeldWriter(DurableHandoff):
    """The inbox writer, which has rows to write (`holding`) but begins no transaction
    until `release` is set."""

    def __init__(self, *args):
        super().__init__(*args)
        self.holding = threading.Event()
        self.release = threading.Event()

    def _write(self, batch) -> None:
        self.holding.set()
        assert self.release.wait(10)
        super()._write(batch)


def handoff_web(catalog, handoff: DurableHandoff) -> WebApp:
    return WebApp(SlackEndpoint(make_app(catalog, handoff), SECRET), handoff,
                  ready=lambda: {"ok": True})


def inbox_rows(engine) -> list[InboxTask]:
    with make_session_factory(engine)() as session:
        return session.scalars(select(InboxTask).order_by(InboxTask.id)).all()


def acks_observed(listener: str) -> tuple[float, float]:
    """(count, sum) of accessbot_ack_seconds for the listener."""
    [family] = metrics.ACK_SECONDS.collect()
    samples = {s.name: s.value for s in family.samples if s.labels.get("listener") == listener}
    return (samples.get("accessbot_ack_seconds_count", 0.0),
            samples.get("accessbot_ack_seconds_sum", 0.0))


def test_a_command_is_answered_only_once_its_task_is_committed(catalog, web_engine):
    nudges: list[frozenset[str]] = []
    handoff = HeldWriter(web_engine, nudges.append)
    count, total = acks_observed("command")
    body = command(f"{RESOURCE} 1h deploy the hotfix").encode()
    with serving(handoff_web(catalog, handoff)) as port, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(exchange, port, signed_post(body), body)
        assert handoff.holding.wait(10)  # the listener ran, and handed its task over
        time.sleep(0.3)
        assert not answer.done() and inbox_rows(web_engine) == []  # no "got it" before the row
        handoff.release.set()
        status, reply = answer.result(10)
    assert status == 200 and "Got it" in json.loads(reply)["text"]
    [row] = inbox_rows(web_engine)
    assert (row.task, row.status) == (Task.SUBMIT_REQUEST, InboxStatus.PENDING)
    user, draft, _reply_to = decode_args(row.args, catalog)
    assert (user, draft.reason) == (REQUESTER, "deploy the hotfix")
    assert nudges == [{Task.SUBMIT_REQUEST}]  # the worker's, with the row's task
    # the acknowledgement's latency is the answer's, the commit's wait included
    after_count, after_total = acks_observed("command")
    assert after_count == count + 1 and after_total - total >= 0.3


def test_requests_at_once_are_each_recorded_once_and_answered(catalog, web_engine):
    nudges: list[frozenset[str]] = []
    handoff = DurableHandoff(web_engine, nudges.append)
    bodies = [command(f"{RESOURCE} 1h task {n}").encode() for n in range(20)]
    with serving(handoff_web(catalog, handoff)) as port, ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda b: exchange(port, signed_post(b), b), bodies))
    assert all(status == 200 and "Got it" in json.loads(reply)["text"]
               for status, reply in answers)
    rows = inbox_rows(web_engine)
    assert sorted(decode_args(row.args, catalog)[1].reason for row in rows) == \
        sorted(f"task {n}" for n in range(20))
    # a nudge per transaction, each with its rows' tasks
    assert 1 <= len(nudges) <= 20 and set().union(*nudges) == {Task.SUBMIT_REQUEST}


def test_a_task_the_database_cannot_take_is_never_acknowledged(catalog, tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'inbox.db'}", busy_timeout=0,
                         writes_first=True)
    handoff = DurableHandoff(engine, lambda _tasks: None)
    body = command(f"{RESOURCE} 1h deploy the hotfix").encode()
    with serving(handoff_web(catalog, handoff)) as port:
        status, reply = exchange(port, signed_post(body), body)
    engine.dispose()
    assert status == 200
    assert json.loads(reply) == {"response_type": "ephemeral", "text": NOT_RECORDED}
    assert "could not record submit_request" in caplog.text


def test_a_body_that_does_not_arrive_is_refused_in_time(catalog, web_engine, monkeypatch):
    monkeypatch.setattr(web_module, "BODY_TIMEOUT", 0.3)
    handoff = DurableHandoff(web_engine, lambda _tasks: None)
    body = command(f"{RESOURCE} 1h deploy the hotfix").encode()
    with serving(handoff_web(catalog, handoff)) as port:
        started = time.monotonic()
        status, _ = exchange(port, signed_post(body), body[:10])  # then nothing more
    assert status == 408 and time.monotonic() - started < 5
    assert inbox_rows(web_engine) == []


@pytest.mark.parametrize("sent", [b"", b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_that_sends_no_whole_head_is_closed(sent, monkeypatch):
    """Nothing, or a head that trickles: the connection would otherwise hold one of the
    server's places for ever."""
    monkeypatch.setattr(web_module, "HEAD_TIMEOUT", 0.3)
    web = WebApp(None, None, ready=lambda: {"ok": True})
    with serving(web) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        assert sock.recv(100) == b""  # closed by the server, with no answer
        assert 0.25 < time.monotonic() - started < 5


def test_a_kept_alive_connection_has_the_same_deadline_for_its_next_head(monkeypatch):
    monkeypatch.setattr(web_module, "HEAD_TIMEOUT", 0.3)
    web = WebApp(None, None, ready=lambda: {"ok": True})
    with serving(web) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and no more
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 4  # uvicorn's own keep-alive timeout is 5 s
