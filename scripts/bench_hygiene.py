"""`python scripts/bench_hygiene.py`: credential hygiene over a large account, in process.

Builds an IAM credential report CSV in AWS's format for N users plus root (seeded, a
realistic mix: most users fine, some with old, unused or two keys, no MFA, unused
passwords, inactive users), then times the three steps of a hygiene run:

  1. parse the report (aws.credentials.parse_credential_report);
  2. evaluate it (services.hygiene.evaluate);
  3. match the keys of key findings to live keys, through a counting fake of ListAccessKeys
     called once per user with key findings.

Times are the median of --repeat runs; memory is the tracemalloc peak of one more run (plus
the report's bytes, held before it starts). Prints PASS/MISS against the targets; exits 0.
"""

import argparse
import os
import platform
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

# ruff: noqa: E402 - the imports below need that path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: scripts.tables

from accessbot.aws.credentials import parse_credential_report
from accessbot.services.hygiene import (
    KEY_KINDS,
    AccessKey,
    Finding,
    FindingKind,
    HygienePolicy,
    evaluate,
    match_key,
)
from scripts.tables import table

TIME_TARGET_S, MEMORY_TARGET_MB = 5.0, 200.0
REPORT_CALLS = 2  # GenerateCredentialReport + GetCredentialReport: one report for everyone
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
POLICY = HygienePolicy()
ACCOUNT = "123456789012"
HEADER = ("user,arn,user_creation_time,password_enabled,password_last_used,"
          "password_last_changed,password_next_rotation,mfa_active,"
          "access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,"
          "access_key_1_last_used_region,access_key_1_last_used_service,"
          "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
          "access_key_2_last_used_region,access_key_2_last_used_service,"
          "cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated")
ROOT_LINE = (f"<root_account>,arn:aws:iam::{ACCOUNT}:root,2019-03-01T09:00:00+00:00,"
             "not_supported,2026-05-20T08:15:00+00:00,not_supported,not_supported,true,"
             "false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A")
SERVICES = (("s3", "eu-west-1"), ("sts", "us-east-1"), ("ec2", "eu-west-1"),
            ("dynamodb", "eu-central-1"), ("lambda", "us-west-2"), ("iam", "N/A"))
NO_KEY = ("false", "N/A", "N/A", "N/A", "N/A")

# The mix, as probabilities per user (and per key for key_*)
INACTIVE, CONSOLE, MFA_OF_CONSOLE = 0.05, 0.70, 0.88
PASSWORD_NEVER_USED, STALE_USE = 0.04, 0.08
ONE_KEY, TWO_KEYS, SECOND_KEY_INACTIVE = 0.60, 0.06, 0.03
API_ONLY_WITH_KEY = 0.95  # a user with neither password nor key is rare (and inactive)
KEY_OLD, KEY_NEVER_USED = 0.10, 0.05


# -- the report -----------------------------------------------------------------------------

def cell(moment: datetime) -> str:
    """A report time: whole seconds, UTC, as AWS writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


class UserMaker:
    """One seeded user after another: report lines, and the keys ListAccessKeys would list."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.keys: dict[str, list[AccessKey]] = {}

    def ago(self, low_days: float, high_days: float, not_before: datetime) -> datetime:
        """A random time low..high days ago, but not before `not_before`."""
        moment = NOW - timedelta(seconds=self.rng.uniform(low_days, high_days) * 86400)
        return max(moment, not_before)

    def used(self, inactive: bool, since: datetime) -> datetime:
        """A last use: long ago for an inactive user, sometimes stale, mostly recent."""
        if inactive:
            return self.ago(95, 400, since)
        if self.rng.random() < STALE_USE:
            return self.ago(46, 85, since)
        return self.ago(0, 30, since)

    def key(self, user: str, created: datetime, active: bool, inactive: bool) -> tuple:
        old = self.rng.random() < KEY_OLD
        rotated = self.ago(91, 900, created) if old else self.ago(0, 88, created)
        rotated = rotated.replace(microsecond=self.rng.randrange(1_000_000))  # CreateDate
        key_id = f"AKIA{self.rng.getrandbits(64):016X}"
        self.keys.setdefault(user, []).append(AccessKey(key_id, active, rotated))
        if self.rng.random() < KEY_NEVER_USED:
            return ("true" if active else "false", cell(rotated), "N/A", "N/A", "N/A")
        service, region = self.rng.choice(SERVICES)
        return ("true" if active else "false", cell(rotated), cell(self.used(inactive, rotated)),
                region, service)

    def line(self, n: int) -> str:
        rng, user = self.rng, f"user-{n:05d}"
        created = self.ago(1, 2000, NOW - timedelta(days=2000))
        inactive = rng.random() < INACTIVE
        password = ("false", "N/A", "N/A", "N/A", "false")
        if rng.random() < CONSOLE:
            changed = self.ago(0, 400, created)
            last = "no_information" if rng.random() < PASSWORD_NEVER_USED \
                else cell(self.used(inactive, changed))
            mfa = "true" if rng.random() < MFA_OF_CONSOLE else "false"
            password = ("true", last, cell(changed), "N/A", mfa)
        draw, keys = rng.random(), [NO_KEY, NO_KEY]
        if password[0] == "false" and rng.random() < API_ONLY_WITH_KEY:
            draw *= ONE_KEY + TWO_KEYS + SECOND_KEY_INACTIVE
        if draw < ONE_KEY + TWO_KEYS + SECOND_KEY_INACTIVE:
            keys[0] = self.key(user, created, True, inactive)
        if draw < TWO_KEYS + SECOND_KEY_INACTIVE:
            keys[1] = self.key(user, created, draw < TWO_KEYS, inactive)
        return ",".join((user, f"arn:aws:iam::{ACCOUNT}:user/{user}", cell(created), *password,
                         *keys[0], *keys[1], "false", "N/A", "false", "N/A"))


def build_report(users: int, seed: int) -> tuple[bytes, dict[str, list[AccessKey]]]:
    maker = UserMaker(seed)
    lines = [HEADER, ROOT_LINE, *(maker.line(n) for n in range(users))]
    return ("\n".join(lines) + "\n").encode(), maker.keys


# -- the run --------------------------------------------------------------------------------

class CountingListAccessKeys:
    """Stands in for IAM's ListAccessKeys: a dict lookup that counts the calls."""

    def __init__(self, keys: dict[str, list[AccessKey]]):
        self._keys, self.calls = keys, 0

    def access_keys(self, iam_user: str) -> list[AccessKey]:
        self.calls += 1
        return self._keys.get(iam_user, [])


def match_keys(findings: list[Finding], source: CountingListAccessKeys) -> int:
    """Match every key finding to a live key, one lookup per user; how many matched."""
    by_user: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.kind in KEY_KINDS:
            by_user.setdefault(finding.iam_user, []).append(finding)
    matched = 0
    for user, user_findings in by_user.items():
        keys = source.access_keys(user)
        matched += sum(match_key(f.key_created, keys) is not None for f in user_findings)
    return matched


def run_once(report: bytes, keys: dict[str, list[AccessKey]]) -> dict:
    source = CountingListAccessKeys(keys)
    started = time.perf_counter()
    rows = parse_credential_report(report)
    parsed = time.perf_counter()
    findings = evaluate(rows, POLICY, NOW)
    evaluated = time.perf_counter()
    matched = match_keys(findings, source)
    done = time.perf_counter()
    return {"rows": len(rows), "findings": findings, "matched": matched,
            "list_calls": source.calls, "parse": (parsed - started) * 1000,
            "evaluate": (evaluated - parsed) * 1000, "match": (done - evaluated) * 1000,
            "total": (done - started) * 1000}


def traced_peak_mb(report: bytes, keys: dict[str, list[AccessKey]]) -> float:
    tracemalloc.start()
    try:
        run_once(report, keys)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# -- report ---------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="IAM users besides root")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated report")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the median counts")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs (nproc), Python "
          f"{platform.python_version()}, {platform.platform()}")
    report, keys = build_report(args.users, args.seed)
    report_mb = len(report) / 2**20
    print(f"report: {args.users} users + root, {report_mb:.1f} MB of CSV, seed {args.seed}, "
          f"now {NOW.isoformat()}, CIS default thresholds")

    runs = [run_once(report, keys) for _ in range(max(1, args.repeat))]
    median = {step: statistics.median(r[step] for r in runs)
              for step in ("parse", "evaluate", "match", "total")}
    peak_mb = report_mb + traced_peak_mb(report, keys)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    first = runs[0]
    findings: list[Finding] = first["findings"]

    per_kind = Counter(f.kind for f in findings)
    table("Findings", ["kind", "findings", "users"],
          [[kind.value, per_kind[kind], len({f.iam_user for f in findings if f.kind is kind})]
           for kind in FindingKind] + [["all", len(findings), len({f.iam_user for f in findings})]])

    key_findings = sum(per_kind[kind] for kind in KEY_KINDS)
    table(f"Time (ms), median of {len(runs)} runs", ["step", "ms"],
          [[step, median[step]] for step in ("parse", "evaluate", "match", "total")])

    users_with_keys = first["list_calls"]
    print(f"\nAWS calls: {REPORT_CALLS} for the report (generate + get: one report serves the "
          f"whole account) + {first['list_calls']} ListAccessKeys, one per user with key "
          f"findings ({users_with_keys} users, {100 * users_with_keys / args.users:.1f}% of "
          f"{args.users}) = {REPORT_CALLS + first['list_calls']}")
    print(f"key findings matched to a live key: {first['matched']} of {key_findings}")
    print(f"rows parsed: {first['rows']}; peak traced memory of a run: {peak_mb - report_mb:.1f}"
          f" MB + {report_mb:.1f} MB of report held; process max RSS (whole bench, report "
          f"generation included): {maxrss_mb:.1f} MB")

    verdicts = [(f"parse + evaluate + match < {TIME_TARGET_S:g} s",
                 f"{median['total'] / 1000:.3f} s", median["total"] / 1000 < TIME_TARGET_S),
                (f"peak memory < {MEMORY_TARGET_MB:g} MB", f"{peak_mb:.1f} MB",
                 peak_mb < MEMORY_TARGET_MB)]
    table("Summary", ["target", "measured", "result"],
          [[target, measured, "PASS" if ok else "MISS"] for target, measured, ok in verdicts])
    return 0


if __name__ == "__main__":
    sys.exit(main())
