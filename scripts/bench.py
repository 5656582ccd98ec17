"""`make bench`: how fast the real bot answers Slack, grants and revokes, with slow AWS.

Starts everything on 127.0.0.1: moto (own process), a proxy that delays every AWS call,
a fake Slack Web API with latency, and `python bot.py` on SQLite in a temp dir. Then:

  1. acknowledgement latency: bursts of concurrent slash commands and Approve clicks;
  2. Approve click -> IAM group membership, seen by polling moto directly;
  3. revocation lag of many live grants seeded into a fresh bot's database.

It prints figures and PASS/MISS against the targets; it exits non-zero only if the
bench itself broke. `--quick` is a smoke run of under 40 seconds.
"""

import argparse
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers.ids import ActionId  # noqa: E402
from models import (  # noqa: E402  # noqa: E402
    AccessRequest,
    AuditEvent,
    Grant,
    GrantStatus,
    RequestStatus,
    make_engine,
    make_session_factory,
)
from models.migrate import upgrade  # noqa: E402
from services.clock import utcnow  # noqa: E402
from tests.fakes.harness import (  # noqa: E402  # noqa: E402
    BOT_TOKEN,
    SIGNING_SECRET,
    BotProcess,
    MotoServer,
    SlackSender,
    free_port,
)
from tests.fakes.latency_proxy import LatencyProxy  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402

APPROVER = "U0BOB"
GROUPS = 5  # phase 3: IAM groups, one resource each
ACK_TARGET_MS = 50.0
APPROVE_TARGET_MS = 1000.0  # plus the AWS call itself
LAG_TARGET_MS = 2000.0
FULL = dict(rounds=10, burst=20, users=50, approvals=20, grants=1000, spread=120.0, lead=15.0)
QUICK = dict(rounds=2, burst=20, users=20, approvals=5, grants=100, spread=8.0, lead=6.0)


def requester(i: int) -> str:
    return f"U0USER{i:03d}"


def iam_name(i: int) -> str:
    return f"bench-user-{i:03d}"


class MotoProcess(MotoServer):
    """moto in its own process, so its CPU time does not skew the bench's own clocks."""

    def __init__(self, log_path: Path):  # noqa: D107 - no in-process server, unlike the base
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "MotoProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._up, 30, "moto server up", interval=0.1)
        return self

    def _up(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# -- helpers ----------------------------------------------------------------------------

def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: waited {timeout:.0f}s for {what}")
        time.sleep(interval)
    return result


def stats(values: list[float]) -> dict[str, float]:
    """n, p50/p95/p99 (nearest rank) and max."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}
    rank = lambda p: ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]  # noqa: E731
    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99),
            "max": ordered[-1]}


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def members(iam, group: str) -> set[str]:
    pages = iam.get_paginator("get_group").paginate(GroupName=group)
    return {user["UserName"] for page in pages for user in page["Users"]}


def start_bot(stack, tmp: Path, name: str, config: dict, aws_url: str) -> tuple[BotProcess, str]:
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config))
    url = f"sqlite:///{tmp / f'{name}.db'}"
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": stack["slack"].api_url, "DATABASE_URL": url,
           "ACCESSBOT_CONFIG": str(tmp / f"{name}.yaml"),
           **stack["moto"].env(), "AWS_ENDPOINT_URL": aws_url}
    return BotProcess(env, tmp / f"{name}.log").start(), url


def reader(url: str):
    """Plain reads (no BEGIN IMMEDIATE): WAL readers never hold up the bot's writers."""
    return create_engine(url)


def count(engine, query) -> int:
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def announced(engine, ids: list[int]) -> bool:
    return count(engine, select(func.count(AccessRequest.id)).where(
        AccessRequest.id.in_(ids), AccessRequest.announced_at.is_not(None))) == len(ids)


def wait_quiet(slack: FakeSlack, settle: float = 1.5, timeout: float = 120) -> None:
    """Wait until the bot's background work has stopped calling Slack for `settle` s."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = len(slack.calls())
        if calls != last:
            last, since = calls, time.monotonic()
        elif time.monotonic() - since >= settle:
            return
        time.sleep(0.1)


def burst(sender: SlackSender, bodies: list[str]):
    """Send all bodies at the same moment, one thread each; replies in order."""
    gate, replies = threading.Barrier(len(bodies)), [None] * len(bodies)

    def send(i: int) -> None:
        gate.wait()
        replies[i] = sender.post(bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


# -- phases -----------------------------------------------------------------------------

def measure_acks(args, stack, sender: SlackSender, db) -> dict:
    """Phase 1: HTTP round trip of slash commands and Approve clicks, 20 at a time."""
    results = {"command": [], "click": [], "command_bad": 0, "click_bad": 0}
    ids: list[int] = []
    for n in range(args.rounds):
        bodies = [sender.command_body(requester((n * args.burst + k) % args.users),
                                      "prod-admins 1h bench load") for k in range(args.burst)]
        for reply in burst(sender, bodies):
            results["command"].append(reply.seconds * 1000)
            found = re.search(r"Request #(\d+)", reply.body) if reply.status == 200 else None
            if found:
                ids.append(int(found[1]))
            else:
                results["command_bad"] += 1
        time.sleep(args.pause)
    wait_until(lambda: announced(db, ids), 180, f"{len(ids)} requests announced")
    for n in range(0, len(ids), args.burst):
        bodies = [sender.click_body(APPROVER, ActionId.APPROVE, str(i))
                  for i in ids[n:n + args.burst]]
        for reply in burst(sender, bodies):
            results["click"].append(reply.seconds * 1000)
            results["click_bad"] += reply.status != 200
        time.sleep(args.pause)
    pending = select(func.count(Grant.id)).where(Grant.status == GrantStatus.PENDING)
    wait_until(lambda: count(db, pending) == 0, 180, "approved grants applied")
    results["granted"] = count(db, select(func.count(Grant.id)).where(
        Grant.status == GrantStatus.ACTIVE))
    wait_quiet(stack["slack"])  # the next phase must not queue behind this one's backlog
    return results


def measure_approve_to_iam(args, stack, sender: SlackSender, db) -> list[float]:
    """Phase 2: Approve click sent -> IAM user in the group, polled on moto directly."""
    iam, users = stack["moto"].iam(), range(min(args.approvals, args.users))
    ids = [int(re.search(r"Request #(\d+)", sender.command(requester(i), "ops-admins 1h timing")
                         .body)[1]) for i in users]
    wait_until(lambda: announced(db, ids), 60, "phase-2 requests announced")
    wait_quiet(stack["slack"])
    samples = []
    for i, request_id in zip(users, ids):
        started = time.perf_counter()
        sender.click(APPROVER, ActionId.APPROVE, str(request_id))
        while iam_name(i) not in members(iam, "ops-admins"):
            if time.perf_counter() - started > 10:
                break
            time.sleep(0.01)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def seed_revocations(args, stack, url: str) -> list[str]:
    """Phase 3 set-up: memberships in moto, ACTIVE grants expiring soon in the database."""
    iam = stack["moto"].iam()
    stack["moto"].reset()
    groups = [f"bench-group-{g}" for g in range(GROUPS)]
    users = [iam_name(u) for u in range(math.ceil(args.grants / GROUPS))]
    for group in groups:
        iam.create_group(GroupName=group)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda user: iam.create_user(UserName=user), users))
        list(pool.map(lambda i: iam.add_user_to_group(GroupName=groups[i % GROUPS],
                                                      UserName=users[i // GROUPS]),
                      range(args.grants)))
    upgrade(url)
    engine = make_engine(url)
    now = utcnow()
    base = now + timedelta(seconds=args.lead)
    with make_session_factory(engine)() as session, session.begin():
        for i in range(args.grants):
            group, user = groups[i % GROUPS], i // GROUPS
            expires = base + timedelta(seconds=args.spread * i / args.grants)
            request = AccessRequest(
                requester_id=requester(user), resource=group, duration=expires - now,
                reason="bench", status=RequestStatus.APPROVED, iam_user=iam_name(user),
                created_at=now, decide_by=now + timedelta(hours=1), announced_at=now,
                decided_by=APPROVER, decided_at=now)
            session.add(Grant(request=request, requester_id=requester(user),
                              iam_user=iam_name(user), resource=group, kind="iam_group",
                              target=group, status=GrantStatus.ACTIVE, starts_at=now,
                              expires_at=expires, granted_at=now, warn_at=None, attempts=0))
    engine.dispose()
    return groups


def measure_revocation(args, stack, tmp: Path) -> dict:
    """Phase 3: a fresh bot with N live grants; revoked_at - expires_at for each."""
    url = f"sqlite:///{tmp / 'revoke.db'}"
    groups = seed_revocations(args, stack, url)
    config = {"resources": {g: {"kind": "iam_group", "group": g, "approvers": [APPROVER]}
                            for g in groups}}
    aws_url = stack["moto"].url if args.revoke_direct else stack["proxy"].url
    started = time.monotonic()
    bot, _ = start_bot(stack, tmp, "revoke", config, aws_url)
    result = {"startup_s": time.monotonic() - started, "log": bot.log_path}
    db = reader(url)
    try:
        live = select(func.count(Grant.id)).where(Grant.status != GrantStatus.REVOKED)
        try:
            wait_until(lambda: count(db, live) == 0, args.lead + args.spread + 120,
                       "every grant revoked", interval=0.5)
        except TimeoutError as exc:
            print(f"  !! {exc}")
    finally:
        bot.stop()
    with db.connect() as connection:
        rows = connection.execute(select(Grant.expires_at, Grant.revoked_at)
                                  .where(Grant.status == GrantStatus.REVOKED)).all()
        result["duplicates"] = len(connection.execute(
            select(AuditEvent.grant_id).where(AuditEvent.action == "revoked")
            .group_by(AuditEvent.grant_id).having(func.count() > 1)).all())
    result["lag"] = [(r.revoked_at - r.expires_at).total_seconds() * 1000 for r in rows]
    iam = stack["moto"].iam()
    result["left"] = sum(len(members(iam, g)) for g in groups)
    text = bot.log()
    result["errors"] = text.count(" ERROR ")
    result["warnings"] = text.count(" WARNING ")
    return result


# -- report -----------------------------------------------------------------------------

def report_acks(acks: dict) -> None:
    rows = []
    for kind in ("command", "click"):
        s = stats(acks[kind])
        rows.append([f"{kind}s", s["n"], s["p50"], s["p95"], s["p99"], s["max"],
                     acks[f"{kind}_bad"], f"p99 < {ACK_TARGET_MS:.0f} ms"])
    table("1. Acknowledgement latency (HTTP round trip, ms)",
          ["kind", "n", "p50", "p95", "p99", "max", "bad", "target"], rows)
    print(f"  {acks['granted']} of {len(acks['click'])} clicked requests became active grants")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, < 40 s")
    parser.add_argument("--rounds", type=int, help="bursts of each kind (10)")
    parser.add_argument("--burst", type=int, help="concurrent requests per burst (20)")
    parser.add_argument("--users", type=int, help="requesters with an IAM user (50)")
    parser.add_argument("--approvals", type=int, help="sequential approvals timed (20)")
    parser.add_argument("--grants", type=int, help="live grants to revoke (1000)")
    parser.add_argument("--spread", type=float, help="seconds over which they expire (120)")
    parser.add_argument("--lead", type=float, help="seconds to the first expiry (15)")
    parser.add_argument("--aws-latency", type=float, default=0.3, help="seconds per AWS call")
    parser.add_argument("--slack-latency", type=float, default=0.2, help="seconds per Slack call")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between bursts")
    parser.add_argument("--revoke-direct", action="store_true",
                        help="phase 3 without the AWS latency proxy")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, dbs)")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    began = time.monotonic()
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs (nproc), Python "
          f"{platform.python_version()}, {platform.platform()}")
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(vars(args).items())))
    tmp = Path(tempfile.mkdtemp(prefix="accessbot-bench-"))
    stack = {"moto": MotoProcess(tmp / "moto.log").start()}
    try:
        stack["proxy"] = LatencyProxy(stack["moto"].url, delay=args.aws_latency).start()
        stack["slack"] = FakeSlack(latency=args.slack_latency).start()
        iam = stack["moto"].iam()
        for group in ("prod-admins", "ops-admins"):
            iam.create_group(GroupName=group)
        for i in range(args.users):
            iam.create_user(UserName=iam_name(i),
                            Tags=[{"Key": "slack-user-id", "Value": requester(i)}])
        resource = {"kind": "iam_group", "approvers": [APPROVER, "U0DAVE"],
                    "min_duration": "1s", "max_duration": "4h"}
        config = {"approval_channel": "C0APPROVALS",
                  "resources": {g: {**resource, "group": g} for g in ("prod-admins", "ops-admins")}}
        bot, url = start_bot(stack, tmp, "acks", config, stack["proxy"].url)
        try:
            sender, db = SlackSender(bot.url, stack["slack"].url), reader(url)
            acks = measure_acks(args, stack, sender, db)
            report_acks(acks)
            approve = stats(measure_approve_to_iam(args, stack, sender, db))
            table("2. Approve click -> user in the IAM group (ms, moto polled every 10 ms)",
                  ["", "n", "p50", "p95", "max", "target"],
                  [["approve->IAM", approve["n"], approve["p50"], approve["p95"],
                    approve["max"], f"< {APPROVE_TARGET_MS + args.aws_latency * 1000:.0f} ms"]])
        finally:
            bot.stop()
        revoke = measure_revocation(args, stack, tmp)
        lag = stats(revoke["lag"])
        table(f"3. Revocation lag, revoked_at - expires_at (ms); bot up in "
              f"{revoke['startup_s']:.1f} s, AWS via {'moto' if args.revoke_direct else 'proxy'}",
              ["", "revoked", "p50", "p95", "p99", "max", "still member", "dup", "target"],
              [[f"{args.grants} grants", lag["n"], lag["p50"], lag["p95"], lag["p99"], lag["max"],
                revoke["left"], revoke["duplicates"], f"p99 < {LAG_TARGET_MS:.0f} ms"]])
        print(f"  bot log: {revoke['errors']} ERROR, {revoke['warnings']} WARNING lines")
    finally:
        for name in ("slack", "proxy", "moto"):
            if name in stack:
                stack[name].stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    aws_ms = args.aws_latency * 1000
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    clean = (lag["n"] == args.grants and revoke["left"] == 0 and revoke["duplicates"] == 0)
    table("Summary", ["target", "measured", "result"], [
        [f"command ack p99 < {ACK_TARGET_MS:.0f} ms", f"{stats(acks['command'])['p99']:.1f} ms",
         verdict(stats(acks["command"])["p99"] < ACK_TARGET_MS and not acks["command_bad"])],
        [f"click ack p99 < {ACK_TARGET_MS:.0f} ms", f"{stats(acks['click'])['p99']:.1f} ms",
         verdict(stats(acks["click"])["p99"] < ACK_TARGET_MS and not acks["click_bad"])],
        [f"approve->IAM max < {APPROVE_TARGET_MS + aws_ms:.0f} ms", f"{approve['max']:.1f} ms",
         verdict(approve["max"] < APPROVE_TARGET_MS + aws_ms)],
        [f"revocation lag p99 < {LAG_TARGET_MS:.0f} ms", f"{lag['p99']:.1f} ms",
         verdict(lag["p99"] < LAG_TARGET_MS)],
        ["all revoked, none left, no duplicates",
         f"{lag['n']}/{args.grants}, {revoke['left']} left, {revoke['duplicates']} dup",
         verdict(clean)],
    ])
    print(f"\nbench took {time.monotonic() - began:.0f} s"
          + (f"; logs and databases in {tmp}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
