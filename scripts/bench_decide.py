"""`make bench-decide`: what the worker's CPU pays to decide a batch of Approve clicks, and
to send the messages the batch owes.

In `make bench` (phase 4) 200 clicks arrive at once and the worker decides them in batches
of up to 100 (handlers/work.Work._approve_all), on two cores shared with everything else;
this script takes one batch alone. It seeds pending requests as phase 4 does (each with
its copy in the approval channel), then decides --batch of them in one transaction with
services.requests.approve_many, the worker's own call: the requests read and locked, the
grants inserted, each request's audit event and owed messages written. It reports the
process's CPU time and the wall time of that transaction, on SQLite and, when a server
answers, on Postgres: the median and the slowest of --repeat batches, after one warm-up.
Then the real sender (handlers/sender.py: claiming as many rows at once as the worker's
sender has threads, sending them from one thread to a fake Slack client that answers at
once) delivers what each batch owes, each copy updated and a reply in its thread: its
CPU per message, and its wall time, which on Postgres includes the server's work
(our process's CPU does not). Statements are SQLAlchemy's cursor executions (on SQLite BEGIN among
them; a COMMIT is not): the same for every run of the same code, where CPU times vary
by a third from run to run on a shared machine.
"""

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo root: scripts, tests.conftest
# ruff: noqa: E402 - the imports below need that path

from sqlalchemy import event, update

from accessbot.handlers.delivery import Delivery
from accessbot.handlers.sender import Sender
from accessbot.models import Grant, GrantStatus, transaction
from accessbot.models.session import make_engine, make_session_factory
from accessbot.services import requests as request_ops
from accessbot.services.catalog import parse_catalog
from accessbot.services.clock import utcnow
from scripts.bench import APPROVER, postgres_database, seed_pending_requests
from scripts.tables import machine, table
from tests.conftest import drop_database
from tests.fakes.outbox import FakeWebClient

USERS = 50  # requesters, as in `make bench`


class SeededCopies:
    """Stands in for the fake Slack in seed_pending_requests: each copy gets a ts."""

    def __init__(self):
        self.posted = 0

    def seed_message(self, _channel: str, _text: str, _blocks: list) -> str:
        self.posted += 1
        return f"1700000000.{self.posted:06d}"


class Measured:
    """The timed batches' figures, each a list: CPU and wall ms of a batch's transaction
    and its statements; then the CPU ms and statements of sending what it owed, a message."""

    def __init__(self):
        self.cpu, self.wall, self.statements = [], [], []
        self.send_cpu, self.send_wall, self.send_statements = [], [], []


def decide(url: str, batch: int, repeat: int) -> Measured:
    """`repeat` batches decided and their messages sent (the warm-up not counted)."""
    # seed_pending_requests gives request i the requester i % USERS and resource i // USERS:
    # so many resources that no two requests ask for the same access
    resources = -(-(batch * (repeat + 1)) // USERS)
    config = {"approval_channel": "C0APPROVALS", "resources": {
        f"bench-{n:03d}": {"kind": "iam_group", "group": f"bench-{n:03d}",
                           "approvers": [APPROVER]} for n in range(resources)}}
    seeded = seed_pending_requests(url, config, USERS, batch * (repeat + 1), SeededCopies())
    ids = [request_id for request_id, _, _ in seeded]
    catalog, engine = parse_catalog(config), make_engine(url)
    sessions = make_session_factory(engine)
    sender = Sender(sessions, Delivery(FakeWebClient(), catalog), owner="bench-decide")
    statements = [0]

    def count(*_args) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    measured = Measured()
    try:
        for n in range(repeat + 1):
            approvals = [request_ops.Approval(i, APPROVER, utcnow())
                         for i in ids[n * batch:(n + 1) * batch]]
            statements[0] = 0
            began, began_cpu = time.perf_counter(), time.process_time()
            with transaction(sessions) as session:
                results = request_ops.approve_many(session, catalog, approvals)
            took_cpu, took = time.process_time() - began_cpu, time.perf_counter() - began
            decided = statements[0]
            refused = [r for r in results if isinstance(r, Exception)]
            if refused:
                raise RuntimeError(f"bench-decide: {len(refused)} refused: {refused[0]}")
            statements[0], began_cpu, began = 0, time.process_time(), time.perf_counter()
            sent = sender.drain()
            send_cpu, send_wall = time.process_time() - began_cpu, time.perf_counter() - began
            if n:  # the first compiles each statement and warms the pool
                measured.cpu.append(took_cpu * 1000)
                measured.wall.append(took * 1000)
                measured.statements.append(decided)
                measured.send_cpu.append(send_cpu * 1000 / sent)
                measured.send_wall.append(send_wall * 1000 / sent)
                measured.send_statements.append(statements[0] / sent)
            else:  # then, as the worker after its start-up, what lives on is out of the
                gc.freeze()  # collector's sight
            # each batch's grants end before the next: a batch reads its requesters' live
            # grants, and by the tenth each of the 50 would hold 20 (1,000 rows read per
            # batch, a third of its CPU), where phase 4's hold at most four
            with transaction(sessions) as session:
                session.execute(update(Grant).where(Grant.status == GrantStatus.PENDING)
                                .values(status=GrantStatus.REVOKED))
    finally:
        engine.dispose()
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="clicks decided together")
    parser.add_argument("--repeat", type=int, default=10, help="batches timed")
    args = parser.parse_args()
    print(machine())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        databases = [("SQLite", f"sqlite:///{tmp}/decide.db", None)]
        postgres = postgres_database()
        if postgres is not None:
            databases.append(("Postgres", postgres[1], postgres))
        for label, url, server in databases:
            try:
                m = decide(url, args.batch, args.repeat)
            finally:
                if server is not None:
                    drop_database(*server)
            rows.append([label, len(m.cpu), statistics.median(m.cpu), max(m.cpu),
                         statistics.median(m.wall), max(m.wall), statistics.median(m.statements),
                         statistics.median(m.send_cpu), statistics.median(m.send_wall),
                         statistics.median(m.send_statements)])
    table(f"Deciding {args.batch} Approve clicks in one transaction (ms), then sending what "
          "they owe, nothing else running",
          ["", "batches", "CPU median", "CPU max", "wall median", "wall max", "statements",
           "a message: CPU", "wall", "statements"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
