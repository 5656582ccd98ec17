"""`make bench-decide`: what the worker's CPU pays to decide a batch of Approve clicks.

In `make bench` (phase 4) 200 clicks arrive at once and the worker decides them in batches
of up to 100 (handlers/work.Work._approve_all), on two cores shared with everything else;
this script takes one batch alone. It seeds pending requests as phase 4 does (each with
its copy in the approval channel), then decides --batch of them in one transaction with
services.requests.approve_many, the worker's own call: the requests read and locked, the
grants inserted, each request's audit event and owed messages written. It reports the
process's CPU time and the wall time of that transaction, on SQLite and, when a server
answers, on Postgres: the median and the slowest of --repeat batches, after one warm-up.
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

from sqlalchemy import update

from accessbot.models import Grant, GrantStatus, transaction
from accessbot.models.session import make_engine, make_session_factory
from accessbot.services import requests as request_ops
from accessbot.services.catalog import parse_catalog
from accessbot.services.clock import utcnow
from scripts.bench import APPROVER, postgres_database, seed_pending_requests
from scripts.tables import machine, table
from tests.conftest import drop_database

USERS = 50  # requesters, as in `make bench`


class SeededCopies:
    """Stands in for the fake Slack in seed_pending_requests: each copy gets a ts."""

    def __init__(self):
        self.posted = 0

    def seed_message(self, _channel: str, _text: str, _blocks: list) -> str:
        self.posted += 1
        return f"1700000000.{self.posted:06d}"


def decide(url: str, batch: int, repeat: int) -> tuple[list[float], list[float]]:
    """CPU and wall milliseconds of each of `repeat` batches (the warm-up not counted)."""
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
    cpu, wall = [], []
    try:
        for n in range(repeat + 1):
            approvals = [request_ops.Approval(i, APPROVER, utcnow())
                         for i in ids[n * batch:(n + 1) * batch]]
            began, began_cpu = time.perf_counter(), time.process_time()
            with transaction(sessions) as session:
                results = request_ops.approve_many(session, catalog, approvals)
            took_cpu, took = time.process_time() - began_cpu, time.perf_counter() - began
            refused = [r for r in results if isinstance(r, Exception)]
            if refused:
                raise RuntimeError(f"bench-decide: {len(refused)} refused: {refused[0]}")
            if n:  # the first compiles each statement and warms the pool
                cpu.append(took_cpu * 1000)
                wall.append(took * 1000)
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
    return cpu, wall


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
                cpu, wall = decide(url, args.batch, args.repeat)
            finally:
                if server is not None:
                    drop_database(*server)
            rows.append([label, len(cpu), statistics.median(cpu), max(cpu),
                         statistics.median(wall), max(wall)])
    table(f"Deciding {args.batch} Approve clicks in one transaction (ms), nothing else running",
          ["", "batches", "CPU median", "CPU max", "wall median", "wall max"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
