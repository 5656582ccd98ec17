"""The web process: it answers Slack (HTTP or Socket Mode) and /healthz, /readyz and
/metrics, and imports only what that needs; the worker process does the rest."""

import contextlib
import gc
import json
import logging
import os
import signal
import threading
from collections.abc import Callable

import waitress
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.error import BoltError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from sqlalchemy import Engine

from accessbot.handlers import health
from accessbot.handlers.boundary import SlackEndpoint
from accessbot.handlers.client import slack_client
from accessbot.handlers.handoff import GIVE_UP, DurableHandoff
from accessbot.handlers.listeners import Handoff, register
from accessbot.jobs.worker import WAKE, WorkerFailed, WorkerProcess, worker_main
from accessbot.models import make_engine
from accessbot.services.catalog import Catalog
from accessbot.services.errors import ConfigError
from accessbot.settings import Settings

log = logging.getLogger("accessbot")

SERVER_THREADS = 32
# Open connections waitress serves at once; beyond it, it stops accepting until one closes.
# Its default, 100, is below a burst of clicks from a busy approval channel.
SERVER_CONNECTIONS = 1000


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
    """WSGI routing: Slack requests (handlers/boundary.py), and the operational endpoints
    (handlers/health.py)."""

    def __init__(self, slack: SlackEndpoint, ready: Callable[[], dict[str, bool]],
                 metrics: Callable[[], bytes] = lambda: b""):
        self.slack = slack
        self.ready = ready
        self.metrics = metrics

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/slack/events" and method == "POST":
            return self.slack(environ, start_response)
        if method not in ("GET", "HEAD"):
            return health.respond(start_response, "404 Not Found", b"not found\n",
                                  "text/plain")
        if path == "/healthz":  # liveness: this process serves
            return health.respond(start_response, "200 OK", b'{"ok": true}',
                                  "application/json")
        if path == "/readyz":
            checks = self.ready()
            ok = all(checks.values())
            return health.respond(start_response,
                                  "200 OK" if ok else "503 Service Unavailable",
                                  json.dumps({"ok": ok, **checks}).encode(),
                                  "application/json")
        if path == "/metrics":
            return health.respond(start_response, "200 OK", self.metrics(),
                                  "text/plain; version=0.0.4; charset=utf-8")
        return health.respond(start_response, "404 Not Found", b"not found\n", "text/plain")




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

    def nudge(task_id: int) -> None:
        try:
            worker.handoff(WAKE, task_id)
        except WorkerFailed as exc:  # the row is safe; a worker (ours restarted) finds it
            log.warning("could not nudge the worker about task #%s: %s", task_id, exc)

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
            return _serve_http(settings, app, worker, worker_gone, engine)
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


def make_server(app, host: str, port: int):
    """The HTTP server (waitress) for a WSGI app, as the bot runs it."""
    return waitress.create_server(app, host=host, port=port, threads=SERVER_THREADS,
                                  connection_limit=SERVER_CONNECTIONS, ident="accessbot")


def _serve_http(settings: Settings, app: App, worker: WorkerProcess,
                worker_gone: threading.Event, engine: Engine) -> int:
    socket_mode = connect_socket_mode(app, settings) if settings.socket_mode else None

    def ready() -> dict[str, bool]:
        return health.ready(worker.running, lambda: socket_mode is None
                            or socket_mode.client.is_connected(), engine)

    web = WebApp(SlackEndpoint(app, settings.slack_signing_secret), ready,
                 lambda: health.metrics_text(engine))
    server = make_server(web, "0.0.0.0", settings.port)
    # What start-up allocated lives as long as the process: out of the collector's sight,
    # a full collection no longer walks it (54 ms for 100,000 objects: a stalled burst).
    gc.freeze()
    stop = threading.Event()

    def shutdown(signum, _frame):
        log.info("signal %s: shutting down", signum)
        stop.set()
        server.close()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("listening on :%d (%s, GET /healthz)", settings.port,
             "Socket Mode" if socket_mode else "POST /slack/events")
    try:
        server.run()
    except (OSError, ValueError):
        if not stop.is_set():  # closing the socket from the handler ends run() this way
            raise
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
