"""The web process: it answers Slack (HTTP or Socket Mode) and /healthz, /readyz and
/metrics, and imports only what that needs; the worker process does the rest."""

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import threading
from collections.abc import Callable

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.error import BoltError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from sqlalchemy import Engine
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from accessbot.handlers import health, memory
from accessbot.handlers.boundary import (
    Rejected,
    SlackEndpoint,
    content_length,
    content_type,
    header_pairs,
    parse_body,
)
from accessbot.handlers.client import slack_client
from accessbot.handlers.handoff import GIVE_UP, DurableHandoff, HandoffFailed
from accessbot.handlers.listeners import (
    Handoff,
    acks_timed_by_caller,
    not_recorded,
    observe_acks,
    register,
)
from accessbot.jobs.worker import WAKE, WorkerFailed, WorkerProcess, worker_main
from accessbot.models import make_engine
from accessbot.services.catalog import Catalog
from accessbot.services.errors import ConfigError
from accessbot.settings import Settings

log = logging.getLogger("accessbot")

# Connections served at once; beyond it, the server answers 503 at once.
SERVER_CONNECTIONS = 1000
HEAD_TIMEOUT = 10.0  # seconds for a request's head to arrive (HttpProtocol)
BODY_TIMEOUT = 10.0  # seconds for a request's body to arrive once its head has

Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body


def _not_the_env_token_warning(record: logging.LogRecord) -> bool:
    # Bolt reads SLACK_BOT_TOKEN from the environment itself and, since we hand it a client
    # built from that token, warns on every start that the token "will be unused"
    return record.getMessage() != warning_client_prioritized_and_token_skipped()


def build_app(settings: Settings, catalog: Catalog, handoff: Handoff) -> App:
    """The web process's Bolt app: it checks, hands over and acknowledges, nothing more."""
    bolt_log = logging.getLogger("slack_bolt.App")
    if _not_the_env_token_warning not in bolt_log.filters:
        bolt_log.addFilter(_not_the_env_token_warning)
    try:
        app = App(
            signing_secret=settings.slack_signing_secret,
            client=slack_client(settings),
            logger=bolt_log,
            # Listeners only hand work over, so they run on the server's own threads: no
            # queue behind Bolt's small pool.
            process_before_response=True,
        )  # verifies the token once, here, and keeps the answer (no auth.test per request)
    except OSError as exc:  # no answer: DNS, refused, timeout, proxy
        raise ConfigError(f"Slack did not answer at {settings.slack_api_url or WebClient.BASE_URL}"
                          f" ({getattr(exc, 'reason', None) or exc}): check this host's network "
                          "access to Slack (or SLACK_API_URL)") from None
    except (BoltError, SlackClientError) as exc:  # an answer: the token was refused
        raise ConfigError(f"SLACK_BOT_TOKEN: Slack refused the token: {exc}") from None
    register(app, catalog, handoff)
    return app


class WebApp:
    """HTTP routing, as an ASGI app: Slack's requests through the boundary
    (handlers/boundary.py), each answered once the tasks its listener handed over are
    committed (handlers/handoff.py); and the operational endpoints (handlers/health.py).

    A Slack request is CPU work only until its commit (the body is in memory, Bolt's
    token check was done at start, listeners call neither AWS nor Slack), so it runs
    on the event loop itself; the answer waits for the inbox writer without holding a
    thread. /readyz and /metrics query the database, on a thread."""

    def __init__(self, slack: SlackEndpoint, handoff: DurableHandoff | None,
                 ready: Callable[[], dict[str, bool]],
                 metrics: Callable[[], bytes] = lambda: b""):
        self.slack = slack
        self.handoff = handoff
        self.ready = ready
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":  # no lifespan events (the server is told), no WebSocket
            return
        path, method = scope["path"], scope["method"]
        if path == "/slack/events" and method == "POST":
            answer = await self._slack(scope, receive)
        elif method not in ("GET", "HEAD"):
            answer = _text(404, b"not found\n")
        elif path == "/healthz":  # liveness: this process serves
            answer = _json(200, {"ok": True})
        elif path == "/readyz":
            checks = await asyncio.to_thread(self.ready)
            ok = all(checks.values())
            answer = _json(200 if ok else 503, {"ok": ok, **checks})
        elif path == "/metrics":
            answer = (200, [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                      await asyncio.to_thread(self.metrics))
        else:
            answer = _text(404, b"not found\n")
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": [
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
              if name.lower() != "content-length"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _slack(self, scope: dict, receive: Callable) -> Answer:
        environ = _environ(scope)
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await _body(environ, receive)
        except TimeoutError:
            return _text(408, b"the body did not arrive in time\n")
        environ["wsgi.input"] = io.BytesIO(body)
        if self.handoff is None:
            return _call_wsgi(self.slack, environ)
        with self.handoff.collecting() as rows, acks_timed_by_caller() as acks:
            answer = _call_wsgi(self.slack, environ)
        try:
            await self.handoff.settled(rows)
        except HandoffFailed:  # rows exist only for a request that passed every check
            said = not_recorded(parse_body(body, content_type(environ)))
            answer = said.status, header_pairs(said.headers), said.body.encode()
        observe_acks(acks)
        return answer


def _environ(scope: dict) -> dict:
    """The WSGI environ of an ASGI request's head: what the boundary reads."""
    environ = {"REQUEST_METHOD": scope["method"], "PATH_INFO": scope["path"],
               "QUERY_STRING": scope["query_string"].decode("latin-1")}
    for raw_name, raw_value in scope["headers"]:
        if b"_" in raw_name:  # "X_Slack_Signature" would pass for "X-Slack-Signature"
            continue
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value  # as WSGI
    return environ


async def _body(environ: dict, receive: Callable) -> bytes:
    """The body when its Content-Length is one the boundary accepts; else nothing is read
    (the boundary refuses the request on its header)."""
    try:
        length = content_length(environ)
    except Rejected:
        return b""
    chunks, size = [], 0
    while size < length:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):  # the end, or the client went away
            break
    return b"".join(chunks)


def _call_wsgi(app: Callable, environ: dict) -> Answer:
    answered: list = []
    body = b"".join(app(environ, lambda status, headers: answered.extend((status, headers))))
    status, headers = answered
    return int(status.split(" ", 1)[0]), headers, body


def _text(status: int, body: bytes) -> Answer:
    return status, [("content-type", "text/plain")], body


def _json(status: int, value: dict) -> Answer:
    return status, [("content-type", "application/json")], json.dumps(value).encode()


def serve(settings: Settings, catalog: Catalog, preflight: Callable[[], int]) -> int:
    """Slack's requests and /healthz; the worker process does the rest. `preflight` runs
    once Slack has taken the token: the AWS check and the migration, in a process of its
    own (what they import ends with it); its exit code, when not 0, is the start's."""
    worker_gone = threading.Event()

    def on_worker_exit(_code: int) -> None:
        worker_gone.set()
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread shuts down, as for a signal

    _forget_old_metrics()
    worker = WorkerProcess(worker_main, settings, on_exit=on_worker_exit)
    # the acknowledgements' inbox writer (handlers/handoff.py) and /readyz: never waiting
    # long for SQLite's lock or a Postgres connection (Slack wants an answer in 3 s), and
    # on SQLite writing before the worker's next transactions
    engine = make_engine(settings.database_url, busy_timeout=0, writes_first=True,
                         pool_size=4, max_overflow=4, connect_timeout=GIVE_UP)

    def nudge(tasks: frozenset[str]) -> None:
        try:
            worker.handoff(WAKE, tasks)
        except WorkerFailed as exc:  # the rows are safe; a worker (ours restarted) finds them
            log.warning("could not nudge the worker about %s: %s", ", ".join(sorted(tasks)),
                        exc)

    handoff = DurableHandoff(engine, nudge)
    try:
        app = build_app(settings, catalog, handoff)  # Slack answers, and takes the token...
        worker.launch()  # (its imports while the preflight runs: a start takes 0.7 s less)
        failed = preflight()  # ...before anything changes in the database
        if failed:
            worker.abandon()
            return failed
        worker.start()  # the database is migrated: the worker may go
        try:
            return _serve_http(settings, app, handoff, worker, worker_gone, engine)
        finally:
            worker.stop(settings.drain_seconds)
    finally:
        engine.dispose()


def _forget_old_metrics() -> None:
    """Samples of earlier processes (prometheus_client's multiprocess files) end with them."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(directory):
        if name.endswith(".db"):
            with contextlib.suppress(FileNotFoundError):  # another start, at the same time
                os.remove(os.path.join(directory, name))


class Server(uvicorn.Server):
    """uvicorn, without its signal handling: the bot's own handlers stop it, and uvicorn
    would raise a signal again once stopped, ending the process before the worker drains."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's protocol with httptools, and a deadline for every request's head: a
    connection that has not sent a whole head HEAD_TIMEOUT seconds after it opened, or
    after its last answer, is closed. uvicorn has no such deadline (only a keep-alive
    one, which the first byte of a request stops), so connections that trickle or send
    nothing would hold their places in SERVER_CONNECTIONS for ever."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def on_headers_complete(self) -> None:
        self._head_deadline.cancel()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # kept alive: the next request's head
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline.cancel()
        super().connection_lost(exc)

    def _unsupported_upgrade_warning(self) -> None:
        """An Upgrade header is served as plain HTTP (no WebSockets here, make_server), with
        no warning: anyone can send one, and each would be two lines in the log."""

    def _await_head(self) -> None:
        self._head_deadline = self.loop.call_later(HEAD_TIMEOUT, self._head_too_slow)

    def _head_too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def make_server(app, host: str, port: int) -> Server:
    """The HTTP server for an ASGI app, as the bot runs it: uvicorn on uvloop, with
    httptools's C parser, and no WebSockets (Slack never opens one to us; uvicorn's
    default would load the `websockets` library: 23 modules, 0.4 MB). `run()` serves until
    `should_exit` is set."""
    return Server(uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http=HttpProtocol, ws="none", lifespan="off",
        log_config=None, access_log=False, server_header=False, proxy_headers=False,
        limit_concurrency=SERVER_CONNECTIONS, timeout_graceful_shutdown=GIVE_UP + 1))


def _serve_http(settings: Settings, app: App, handoff: DurableHandoff, worker: WorkerProcess,
                worker_gone: threading.Event, engine: Engine) -> int:
    socket_mode = connect_socket_mode(app, settings) if settings.socket_mode else None

    def ready() -> dict[str, bool]:
        return health.ready(worker.running, lambda: socket_mode is None
                            or socket_mode.client.is_connected(), engine)

    web = WebApp(SlackEndpoint(app, settings.slack_signing_secret), handoff, ready,
                 lambda: health.metrics_text(engine))
    server = make_server(web, "0.0.0.0", settings.port)
    memory.started()

    def shutdown(signum, _frame):
        log.info("signal %s: shutting down", signum)
        server.should_exit = True  # it stops accepting, and answers what it has

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("listening on :%d (%s, GET /healthz)", settings.port,
             "Socket Mode" if socket_mode else "POST /slack/events")
    server.run()
    if socket_mode is not None:
        socket_mode.close()
    return 1 if worker_gone.is_set() else 0


def connect_socket_mode(app: App, settings: Settings) -> SocketModeHandler:
    handler = SocketModeHandler(app, settings.slack_app_token)
    try:
        handler.connect()
    except (SlackClientError, OSError) as exc:
        raise ConfigError(f"SLACK_APP_TOKEN: could not open a Socket Mode connection: {exc}") \
            from None
    if not handler.client.is_connected():
        raise ConfigError("SLACK_APP_TOKEN: Slack gave a Socket Mode URL, but connecting to it "
                          "failed (see the log above)")
    log.info("Socket Mode connected")
    return handler
