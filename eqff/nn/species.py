"""Per-element blocks: the element → index map, embeddings, and energy scale and offsets."""

import torch
from torch import nn

from eqff.errors import UnknownElementError, element_names

MAX_ATOMIC_NUMBER = 118


class SpeciesIndex(nn.Module):
    """Maps atomic numbers to indices 0..len(elements)−1 and refuses unknown elements.

    Args:
        elements: the atomic numbers the model knows, in index order.

    Shapes: (n,) atomic numbers → (n,) int64 indices.
    """

    def __init__(self, elements: list[int]) -> None:
        super().__init__()
        if len(set(elements)) != len(elements) or not all(1 <= z <= MAX_ATOMIC_NUMBER for z in elements):
            raise ValueError(f"elements must be distinct atomic numbers in 1..{MAX_ATOMIC_NUMBER}, got {elements}")
        self.elements = list(elements)
        self.known_elements = element_names(elements)  # for the error message (TorchScript cannot call it)
        self.max_atomic_number = MAX_ATOMIC_NUMBER
        lookup = torch.full((MAX_ATOMIC_NUMBER + 1,), -1, dtype=torch.long)
        lookup[torch.tensor(elements, dtype=torch.long)] = torch.arange(len(elements))
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        in_range = (atomic_numbers >= 0) & (atomic_numbers <= self.max_atomic_number)
        index = self.lookup[atomic_numbers.clamp(0, self.max_atomic_number)]
        # a data-dependent check would break a torch.compile graph; the compiled training step
        # checks the frames' elements before training (eqff.nn.forces.compiled_energy_forces)
        if not torch.compiler.is_compiling() and not bool((in_range & (index >= 0)).all()):
            raise UnknownElementError(
                "the structure holds elements this model was not trained on; it knows " + self.known_elements
            )
        return index


class PerElementScaleShift(nn.Module):
    """Turns per-atom network outputs into per-atom energies: ``scale * x + offset[element]``.

    ``scale`` (eV) and ``offsets`` (eV per atom of each element) are buffers, so a saved model
    reproduces inference exactly. Fit them with :func:`eqff.train.stats.energy_statistics`
    and :meth:`set_statistics`; by default scale is 1 and offsets are 0.

    The offsets and the energies are float64 whatever the model's dtype: a molecule's total
    energy is large (about −17,600 eV for aspirin), and float32 would round it, and each offset,
    to about a meV. Casting the module (``.float()``, ``.to(dtype)``) moves the offsets between
    devices but keeps them float64; the network's outputs stay in the model's dtype.

    Args:
        num_elements: number of elements the model knows.

    Shapes: (n,) outputs and (n,) species indices → (n,) float64 energies, eV.
    """

    def __init__(self, num_elements: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("offsets", torch.zeros(num_elements, dtype=torch.float64))

    def _apply(self, fn, recurse: bool = True):
        offsets = self.offsets
        super()._apply(fn, recurse)
        self.offsets = offsets.to(device=self.scale.device)  # float64 whatever dtype ``fn`` casts to
        return self

    def set_statistics(self, offsets: torch.Tensor, scale: float) -> None:
        """Store fitted per-element offsets (num_elements,) in eV and a scale in eV."""
        if offsets.shape != self.offsets.shape or not scale > 0:
            raise ValueError(f"need offsets of shape {tuple(self.offsets.shape)} and scale > 0")
        self.offsets.copy_(offsets)
        self.scale.fill_(scale)

    def forward(self, outputs: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return (self.scale * outputs).double() + self.offsets[species]


def sum_per_frame(atomic_energies: torch.Tensor, batch: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(..., n) per-atom energies → (..., num_frames) totals (a committee's (K, n) → (K, B)).

    A product with the (num_frames, n) frame-membership matrix rather than a scatter: TorchInductor
    could not generate multi-threaded CPU code for a float64 scatter-add (torch 2.13), so compiling
    a model's energy on a structure large enough for two threads failed.
    """
    frames = torch.arange(num_frames, device=batch.device).unsqueeze(1)  # (num_frames, 1)
    membership = (batch.unsqueeze(0) == frames).to(atomic_energies.dtype)  # (num_frames, n)
    return atomic_energies @ membership.T
