"""Plain-text output of the benchmark scripts: the machine they ran on, and tables."""

import os
import platform


def machine() -> str:
    """The line each benchmark prints first: what its figures were measured on."""
    return (f"machine: {len(os.sched_getaffinity(0))} CPUs (nproc), Python "
            f"{platform.python_version()}, {platform.platform()}")


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
