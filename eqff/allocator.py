"""Keep freed memory in the process instead of returning it to the operating system.

A force call allocates and frees many large tensors. With glibc's default settings each
large one is a fresh ``mmap``: zeroed pages, faulted in one by one, unmapped at ``free``. On
a 2-core CPU this made a PaiNN call on water boxes two to three times slower (``eqff bench``).
:func:`retain_freed_memory` stops glibc from using ``mmap`` for allocations and raises its trim
threshold (what ``MALLOC_MMAP_MAX_=0`` and ``MALLOC_TRIM_THRESHOLD_`` do), so the same pages
are reused from one call to the next. It changes only how the process recycles memory,
never a result; where the C library has no ``mallopt`` it does nothing.
"""

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD_BYTES = 2**30


@functools.cache
def retain_freed_memory() -> bool:
    """Tune glibc malloc once per process; return whether it was applied."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    no_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    high_trim = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1
    return no_mmap and high_trim
