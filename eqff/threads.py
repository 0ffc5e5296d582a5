"""How many CPU threads torch uses for one force call.

torch starts with one intra-op thread per CPU. For a small molecule a call is a few hundred
small operations, each too short to share: a second thread adds synchronisation and, on a CPU
that is busy with other work, waits for a core at every operation, so one call can take a
hundred times longer (``eqff bench --threads 1 2`` measures it). eqff therefore runs calls on
structures smaller than :data:`MULTI_THREAD_MIN_ATOMS` on one thread, unless the user has
chosen a number: an explicit ``threads`` argument, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``,
or ``torch.set_num_threads`` called after importing eqff (one called before cannot be told
apart from torch's default: pass ``threads`` then). The setting applies to each call only;
torch's own setting is restored after it.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

MULTI_THREAD_MIN_ATOMS = 500
"""Structures with fewer atoms are evaluated on one thread by default."""

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

THREADS_HELP = "torch CPU threads per force call (default: one for molecules unless OMP_NUM_THREADS is set)"
"""The help text of the ``--threads`` option of ``eqff md`` and the examples."""

_THREADS_AT_IMPORT = torch.get_num_threads()
"""torch's thread count when eqff was imported: its default, unless set before."""


def user_chose_threads() -> bool:
    """Whether the user set the thread count: by environment, or by ``torch.set_num_threads``
    since eqff was imported."""
    return any(os.environ.get(name) for name in THREAD_ENV_VARS) or torch.get_num_threads() != _THREADS_AT_IMPORT


def call_threads(num_atoms: int, threads: int | None) -> int | None:
    """Threads for a call on ``num_atoms`` atoms: ``threads`` if given, ``None`` (leave torch's
    setting) if the user chose one or the structure has :data:`MULTI_THREAD_MIN_ATOMS` atoms or
    more, else 1."""
    if threads is not None:
        return threads
    if user_chose_threads() or num_atoms >= MULTI_THREAD_MIN_ATOMS:
        return None
    return 1


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``None``: as set), then restore."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
