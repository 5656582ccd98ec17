"""The benchmark scripts run: `make bench` is too long for the suite, but an import or a
server that no longer starts should fail here, not on the day someone measures."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_bench_edge_serves_the_bot_and_prints_its_figures():
    done = run_script("scripts/bench_edge.py", "--rounds", "1", "--burst", "3", timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    for label in ("SQLite: commands", "SQLite: clicks"):
        row = next(r for r in rows if " ".join(r[:4]) == f"accessbot web, {label}")
        assert row[4] == "3"  # samples: one burst of 3 after the two warm-up bursts


def test_bench_decide_decides_batches_and_prints_its_figures():
    done = run_script("scripts/bench_decide.py", "--batch", "3", "--repeat", "2", timeout=120)
    assert done.returncode == 0, done.stderr
    row = next(line.split() for line in done.stdout.splitlines()
               if line.split()[:1] == ["SQLite"])
    assert row[1] == "2" and float(row[2]) > 0  # batches timed, CPU median


def test_bench_slack_client_calls_over_https_and_plain_http():
    done = run_script("scripts/bench_slack_client.py", "--calls", "3", "--rounds", "1",
                      timeout=120)
    assert done.returncode == 0, done.stderr
    connections = {line.split("(")[0].strip(): line.split()[-1]
                   for line in done.stdout.splitlines() if line.startswith("  HTTP")}
    assert connections == {"HTTPS, new connection per call": "call",
                           "HTTPS, kept connection": "1",
                           "HTTP, new connection per call": "call",
                           "HTTP, kept connection": "1"}  # 4 calls each, the warm-up's too


def test_bench_parses_its_options():
    done = run_script("scripts/bench.py", "--help", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--decisions" in done.stdout
