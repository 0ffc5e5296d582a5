"""Keep freed memory in the process instead of returning it to the operating system.

A force call allocates and frees many large tensors. With glibc's default settings each
large one is a fresh ``mmap``: zeroed pages, faulted in one by one, unmapped at ``free``. On
a 2-core CPU this made a PaiNN call on water boxes two to three times slower (``eqff bench``).
:func:`retain_freed_memory` stops glibc from using ``mmap`` for allocations and from trimming
the heap (what ``MALLOC_MMAP_MAX_=0`` and ``MALLOC_TRIM_THRESHOLD_=-1`` do), so the same pages
are reused from one call to the next. The cost: the process keeps the memory of its largest
call (about 1.2 MB per atom of water for PaiNN in float32) until it exits. It changes only how
the process recycles memory, never a result; where the C library has no ``mallopt`` it does
nothing.

It changes the whole process, so eqff never calls it on a user's behalf inside a library call:
the ``eqff`` commands that run MD or time calls (``eqff md``, ``eqff bench``, ``eqff report``),
whose processes are their own, opt in; a script of yours may call :func:`retain_freed_memory`
once, before its first force call, to the same effect.
"""

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = -1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, or ``None`` where it cannot be loaded (loaded once per process)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


@functools.cache
def retain_freed_memory() -> bool:
    """Tune glibc malloc once per process; return whether it was applied."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    no_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    no_trim = mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    return no_mmap and no_trim


def can_release_freed_memory() -> bool:
    """Whether :func:`release_freed_memory` works here (glibc's ``malloc_trim`` exists)."""
    return hasattr(_libc(), "malloc_trim")


def release_freed_memory() -> None:
    """Hand the free pages of every heap back to the operating system now (glibc's
    ``malloc_trim(0)``, which works even where :func:`retain_freed_memory` stopped automatic
    trimming), so that the process's resident set counts only memory in use. Requires
    :func:`can_release_freed_memory`."""
    _libc().malloc_trim(0)
