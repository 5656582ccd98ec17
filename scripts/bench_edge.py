"""`make bench-edge`: the web process's own share of an acknowledgement, alone on the machine.

`make bench` measures acknowledgements with everything on one machine: the bot's worker,
moto, the fake Slack, Postgres and the client share its cores. This script takes all of
that away, to show what the web process itself costs. In a process of its own, the bot's
HTTP server (uvicorn) serves its real app (handlers/web.WebApp: the HTTP boundary, Bolt,
the listeners and the durable hand-off into a migrated SQLite file, or Postgres); the
worker is not started (the hand-off's nudge goes nowhere) and the catalog is the one
resource the requests name. Bursts of signed slash commands and Approve clicks go out
from a one-thread client (tests.fakes.harness.post_together). The same bursts to the
same server with an empty app give the floor that the server alone sets.
"""

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo root: tests.fakes
# ruff: noqa: E402 - the imports below need that path

from accessbot.handlers.ids import ActionId
from scripts.bench import postgres_database
from scripts.tables import machine, table
from tests.conftest import drop_database
from tests.fakes.harness import SIGNING_SECRET, SlackSender, free_port, post_together

RESOURCE = "prod-admins"

# The served side, run as `python -c SERVE empty PORT` or `... bot PORT URL SECRET RESOURCE`.
SERVE = """
import os, sys, gc, tempfile
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp())
from accessbot.handlers.logs import configure_logging
from accessbot.handlers.web import make_server
configure_logging()
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "empty":
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
else:
    from slack_bolt import App
    from slack_bolt.authorization import AuthorizeResult
    from accessbot.handlers.boundary import SlackEndpoint
    from accessbot.handlers.handoff import DurableHandoff
    from accessbot.handlers.listeners import register
    from accessbot.handlers.web import WebApp
    from accessbot.models import make_engine
    from accessbot.models.migrate import upgrade
    from accessbot.services.catalog import parse_catalog
    url, secret, resource = sys.argv[3:6]
    upgrade(url)
    engine = make_engine(url, busy_timeout=0, writes_first=True, pool_size=4, max_overflow=4)
    catalog = parse_catalog({"approval_channel": "C0APPROVALS", "resources": {resource: {
        "kind": "iam_group", "group": "g", "approvers": ["U0BOB"]}}})
    bolt = App(signing_secret=secret, process_before_response=True, authorize=lambda **_:
               AuthorizeResult(enterprise_id=None, team_id="T0FAKE", bot_token="xoxb-bench",
                               bot_user_id="U0ACCESSBOT", bot_id="B0ACCESSBOT"))
    handoff = DurableHandoff(engine, lambda _tasks: None)
    register(bolt, catalog, handoff)
    app = WebApp(SlackEndpoint(bolt, secret), handoff, lambda: {"ok": True})
gc.freeze()
import socket
sock = socket.socket()
sock.bind(("127.0.0.1", port))
sock.listen(2048)  # connections wait in the backlog until the server accepts
server = make_server(app, "127.0.0.1", port)
print("ready", flush=True)
server.run(sockets=[sock])
"""


def stats(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    rank = lambda p: ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]  # noqa: E731
    return rank(50), rank(99), ordered[-1]


def serve(*args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # the server's log: a pipe nobody reads would fill
    process = subprocess.Popen([sys.executable, "-c", SERVE, args[0], str(port), *args[1:]],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        log.seek(0)
        raise RuntimeError(f"bench-edge: the server did not start: {line}{log.read()}")
    return process, f"http://127.0.0.1:{port}"


def bursts(url: str, kind: str, rounds: int, size: int) -> list[float]:
    """Milliseconds from connecting to the answer's last byte, every request of every burst
    after the first two (the server warms up)."""
    sender = SlackSender(url, "http://127.0.0.1:9", SIGNING_SECRET)
    samples = []
    for n in range(rounds + 2):
        bodies = [sender.command_body(f"U0USER{i:03d}", f"{RESOURCE} 1h bench load")
                  if kind == "commands" else sender.click_body("U0BOB", ActionId.APPROVE, str(i))
                  for i in range(size)]
        replies = post_together([(sender, body) for body in bodies])
        if any(reply.status != 200 for reply in replies):
            raise RuntimeError(f"bench-edge: {[r.status for r in replies]}")
        if n >= 2:
            samples += [reply.seconds * 1000 for reply in replies]
        time.sleep(0.2)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="bursts of each kind")
    parser.add_argument("--burst", type=int, default=20, help="requests sent together")
    args = parser.parse_args()
    print(machine())
    servers = [("uvicorn, empty app", ("empty",))]
    postgres = postgres_database()  # (server, a fresh database) when a Postgres answers
    with tempfile.TemporaryDirectory() as tmp:
        servers.append(("accessbot web, SQLite", ("bot", f"sqlite:///{tmp}/edge.db",
                                                  SIGNING_SECRET, RESOURCE)))
        if postgres is not None:
            servers.append(("accessbot web, Postgres", ("bot", postgres[1], SIGNING_SECRET,
                                                        RESOURCE)))
        rows = []
        for label, served in servers:
            process, url = serve(*served)
            try:
                for kind in ("commands", "clicks"):
                    samples = bursts(url, kind, args.rounds, args.burst)
                    rows.append([f"{label}: {kind}", len(samples), *stats(samples)])
            finally:
                process.kill()
                process.wait()
    if postgres is not None:
        drop_database(*postgres)
    table(f"Bursts of {args.burst} at once, HTTP round trip (ms), nothing else running",
          ["", "n", "p50", "p99", "max"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
