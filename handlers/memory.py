"""Memory that start-up and the heavy jobs leave free goes back to the system.

CPython hands freed blocks of more than 512 bytes to the C allocator, and glibc's malloc
keeps freed heap pages unless they are at the heap's top: after start-up, or a credential
report of ten thousand users, the process keeps pages it no longer uses. malloc_trim(0)
returns them (an idle bot: about 2 MB of its 150; docs/BENCHMARKS.md, phase 5).
"""

import ctypes
import gc


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl and macOS have none
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def give_back() -> None:
    """Free heap pages back to the system (nothing where the C library cannot)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def started() -> None:
    """Start-up is over: its garbage collected, what it built frozen out of the collector's
    sight (a full collection no longer walks it: 54 ms for 100,000 objects, a stalled
    burst), and the free pages given back."""
    gc.collect()
    gc.freeze()
    give_back()
