"""How much memory a model call takes and how much is free, so that a batch of frames is sized to
fit instead of the process being killed by the operating system halfway through.

On the CPU the peak is the process's resident set (Linux's ``VmHWM``, reset through
``/proc/self/clear_refs``), measured after the heap's free pages were handed back to the
operating system (freed memory the process kept would otherwise hide the call's working memory:
see :mod:`eqff.allocator`); on CUDA it is torch's allocator peak. Elsewhere nothing is measured
and callers keep the batch size they were given.
"""

import re
from collections.abc import Callable
from pathlib import Path

import torch

from eqff.allocator import can_release_freed_memory, release_freed_memory

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MEMINFO = Path("/proc/meminfo")


def _kilobytes(path: Path, field: str) -> int:
    """A ``field: N kB`` line of a /proc file, in kB."""
    return int(re.search(rf"^{field}:\s+(\d+) kB", path.read_text(), re.MULTILINE).group(1))


def can_measure(device: torch.device) -> bool:
    """Whether :func:`peak_bytes` and :func:`free_bytes` work on ``device`` here."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _CLEAR_REFS.exists() and _MEMINFO.exists() and can_release_freed_memory()


def peak_bytes(call: Callable[[], object], device: torch.device) -> int:
    """Bytes by which running ``call()`` raised the memory held on ``device`` above what was held
    just before it (its working memory at its peak). Requires :func:`can_measure`."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        call()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    release_freed_memory()
    _CLEAR_REFS.write_text("5")  # resets VmHWM, the peak resident set, to the current one
    before = _kilobytes(_STATUS, "VmRSS")
    call()
    return (_kilobytes(_STATUS, "VmHWM") - before) * 1024


def free_bytes(device: torch.device) -> int:
    """Memory still free for this process on ``device``: the host's ``MemAvailable`` on the CPU,
    the device's free memory on CUDA. Requires :func:`can_measure`."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return _kilobytes(_MEMINFO, "MemAvailable") * 1024
