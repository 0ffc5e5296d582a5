"""When a :class:`~eqff.potential.Potential` compiles its energy-and-forces function.

Compiled calls (:func:`eqff.nn.forces.compiled_energy_forces`) are faster for most architectures,
but compiling costs minutes, and whether that pays depends on how long the run will be, which a
calculator does not know. The policy is the ski-rental rule: calls run eagerly until they have
taken as long as compiling the model's architecture took (:data:`COMPILE_SECONDS`), and are
compiled from then on. A short run never waits for a compiler; a long one runs compiled after
that time, and no run pays more than about twice what the better choice in hindsight would have.
Once torch's on-disk cache holds a model's kernels, compiling it again takes seconds (PaiNN: 7 s
against 72 s), so the rule errs on the side of compiling late.

:data:`COMPILE_SECONDS` holds each architecture's first compilation without a cache, at its
default size on a 2-core CPU; ``eqff bench --compile`` times compiled calls and the compiling
first call ("compile s"). PONITA is not compiled by default: its calls are a few large matrix
products, which compiling did not speed up. Stress is always computed eagerly (the compiled function gives energy and
forces only). A model that cannot be compiled is named in one warning and stays eager.
"""

import sys
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from eqff.errors import ModelCompileError
from eqff.models import architecture_name
from eqff.nn.forces import compiled_energy_forces, energy_forces_stress

COMPILE_SECONDS = {"painn": 72.0, "gemnet-t": 223.0, "segnn": 880.0, "tfn": 785.0, "schnet": 218.0, "egnn": 318.0, "dimenet++": 593.0}
"""s that compiling each architecture took: eager calls of ``compile=None`` run this
long before they are compiled. Architectures not listed (PONITA) are not compiled by default."""


def _compile_seconds(model: nn.Module) -> float:
    """The model's architecture's :data:`COMPILE_SECONDS`; infinite for any other (a class of one's own)."""
    try:
        return COMPILE_SECONDS.get(architecture_name(model), float("inf"))
    except ValueError:
        return float("inf")


class EnergyForcesFunction:
    """Energy, forces (and stress) of ``model`` for a graph, eager or compiled.

    Args:
        model: an eqff model on its device, in its dtype and in eval mode.
        compile: ``None``: compile once eager calls have taken the architecture's
            :data:`COMPILE_SECONDS` (never for one not listed there, nor for a model class of
            one's own); ``True``: compile at the first call; ``False``: never.
        static_shapes: keep a Verlet list's pairs beyond the cutoff
            (:func:`~eqff.nn.forces.graph_for_model`).
    """

    def __init__(self, model: nn.Module, compile: bool | None = None, static_shapes: bool = False) -> None:
        self.model = model
        self.compile = compile
        self.static_shapes = static_shapes
        self.compile_after_seconds = _compile_seconds(model)
        self.eager_seconds = 0.0
        self.compiled: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None

    def __call__(self, graph: dict[str, torch.Tensor], compute_stress: bool) -> dict[str, torch.Tensor]:
        """``energy`` (B,), ``atomic_energies`` (n,), ``forces`` (n, 3) and, if asked, ``stress`` (B, 3, 3)."""
        if not compute_stress and self.compiled is None and self._time_to_compile():
            out = self._compile(graph)
            if out is not None:
                return out
        if not compute_stress and self.compiled is not None:
            try:
                return self.compiled(graph)
            except ModelCompileError as error:  # recompiling for new shapes failed
                self._stay_eager(error)
        start = time.perf_counter()
        out = energy_forces_stress(self.model, graph, compute_stress, self.static_shapes)
        self.eager_seconds += time.perf_counter() - start
        return out

    def _time_to_compile(self) -> bool:
        if self.compile is None:
            return self.eager_seconds >= self.compile_after_seconds
        return self.compile

    def _compile(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Compile and return the first compiled call's result, saying so on stderr; on failure,
        warn, stay eager and return ``None``."""
        name = type(self.model).__name__
        reason = "as asked" if self.compile else f"after {self.eager_seconds:.0f} s of eager calls"
        print(f"eqff: compiling {name}'s energy and forces ({reason}); about a minute the first time on a CPU, "
              "seconds once torch's cache holds it", file=sys.stderr, flush=True)  # fmt: skip
        start = time.perf_counter()
        compiled = compiled_energy_forces(self.model, self.static_shapes)
        try:
            out = compiled(graph)
        except ModelCompileError as error:
            self._stay_eager(error)
            return None
        self.compiled = compiled
        print(f"eqff: compiled in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        return out

    def _stay_eager(self, error: ModelCompileError) -> None:
        """Warn once and compute every later call eagerly."""
        warnings.warn(f"{error}; eqff goes on without compiling", RuntimeWarning, stacklevel=4)
        self.compile = False
        self.compiled = None
