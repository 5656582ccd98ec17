"""Plain-text output of the benchmark scripts: the machine they ran on, and tables."""

import os
import platform
import time


def machine() -> str:
    """The line each benchmark prints first: what its figures were measured on, and how
    fast one of its cores is at that moment. A shared machine's speed changes from day to
    day (a figure of 2-3 times as many milliseconds has come with a loop 2-3 times as
    slow): compare runs only at a like speed."""
    return (f"machine: {len(os.sched_getaffinity(0))} CPUs (nproc), Python "
            f"{platform.python_version()}, {platform.platform()}; "
            f"a loop of a million additions takes {_loop_ms():.0f} ms (best of 5)")


def _loop_ms() -> float:
    best = float("inf")
    for _ in range(5):
        started, total = time.perf_counter(), 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a titled table: first column left-aligned, the rest right-aligned."""
    cells = [header] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
