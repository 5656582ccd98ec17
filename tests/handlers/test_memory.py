"""handlers/memory.py: freed heap pages go back to the system."""

import platform
import subprocess
import sys

import pytest

# In a process of its own: the heap of a fresh interpreter, not the suite's.
FREED_THEN_GIVEN_BACK = """
from accessbot.handlers import memory

def rss_mb():
    with open("/proc/self/status") as status:
        return int(next(l for l in status if l.startswith("VmRSS")).split()[1]) / 1024

blocks = [bytearray(16_384) for _ in range(4_000)]  # 64 MB of the C heap (each > 512 B,
pin = bytearray(16_384)                             # < malloc's mmap threshold); the heap's
del blocks                                          # top stays in use
freed = rss_mb()
memory.give_back()
print(freed, rss_mb())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_heap_pages_freed_but_kept_by_malloc_are_given_back():
    out = subprocess.run([sys.executable, "-c", FREED_THEN_GIVEN_BACK], capture_output=True,
                         text=True, check=True).stdout
    freed, after = map(float, out.split())
    assert freed - after > 48, (freed, after)


def test_start_up_freezes_what_lives_and_collects_what_does_not():
    code = ("import gc, weakref; from accessbot.handlers import memory\n"
            "class Cycle: pass\n"
            "c = Cycle(); c.me = c; garbage = weakref.ref(c); del c\n"  # only a collection
            "kept = [object() for _ in range(1000)]\n"                  # frees it
            "memory.started()\n"
            "print(gc.get_freeze_count() >= 1000, garbage() is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True"]
