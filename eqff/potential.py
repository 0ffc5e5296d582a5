"""One evaluation path from a structure to energy, forces and stress, shared by ASE and OpenMM.

:class:`Potential` owns a model, its device and dtype, and a cached neighbour list. It takes
numpy arrays in Å and returns numpy arrays in eV, eV/Å and eV/Å³; it knows nothing of the
model's insides. A committee (:mod:`eqff.models.committee`) also gives its uncertainties.
"""

import copy
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from eqff.compilation import EnergyForcesFunction
from eqff.data import keys
from eqff.data.graph import centred_positions, structure_to_graph
from eqff.domain import DomainCheck
from eqff.errors import EqffInputError, UnknownElementError, element_names
from eqff.model_file import load_model
from eqff.neighbours import NeighbourListCache
from eqff.threads import call_threads, torch_threads

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_SKIN = 0.5
"""Å of neighbour-list skin: the list is rebuilt only after an atom moved 0.25 Å."""


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device, refusing one that is not available here with :class:`EqffInputError`."""
    try:
        device = torch.device(device)
    except RuntimeError:
        raise EqffInputError(f"device {str(device)!r} is not a device name; use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EqffInputError(f"device {str(device)!r} was asked for but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise EqffInputError(f"device {str(device)!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    if device.type not in ("cpu", "cuda"):
        raise EqffInputError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda'")
    return device


@dataclass
class Timings:
    """Seconds spent in the last call, split into neighbour list and model (with forces)."""

    neighbour_list: float = 0.0
    model: float = 0.0


class Potential:
    """A model ready to evaluate structures.

    A structure whose composition is not among those the model file was trained on gets one
    :class:`~eqff.errors.OutOfDomainWarning` per composition (:mod:`eqff.domain`).

    Attributes:
        gives_uncertainty: the model is a committee, whose calls also return the spread of its
            members' predictions (see :meth:`__call__`).

    Args:
        model: a model file path, the name of a shipped potential, or an eqff model (copied,
            so the caller's model keeps its dtype, device and mode).
        device: "cpu", "cuda" or "cuda:N".
        dtype: "float32" or "float64"; ``None``: the model file's own (float32 for a model).
        skin: neighbour-list skin, Å.
        threads: torch CPU threads per call; ``None``: one thread for structures under
            :data:`~eqff.threads.MULTI_THREAD_MIN_ATOMS` atoms unless the user set a number
            (see :mod:`eqff.threads`), torch's setting otherwise.
        compile: ``None``: compile the energy-and-forces function once eager calls have taken
            about what compiling costs (:mod:`eqff.compilation`); ``True``: at the first call;
            ``False``: never.
    """

    def __init__(
        self,
        model: str | os.PathLike | nn.Module,
        device: str | torch.device = "cpu",
        dtype: str | None = "float32",
        skin: float = DEFAULT_SKIN,
        threads: int | None = None,
        compile: bool | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise EqffInputError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)} or None, got {dtype!r}")
        self.device = resolve_device(device)
        self.metadata: dict = {}
        if isinstance(model, nn.Module):
            model = copy.deepcopy(model)
            saved_dtype = "float32"
        else:
            model, content = load_model(model)
            self.metadata = content["metadata"]
            saved_dtype = content["dtype"]
        self.dtype = DTYPES[dtype or saved_dtype]
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.gives_uncertainty = hasattr(self.model, "num_members")
        self.elements = set(self.model.elements)
        self.check_domain = DomainCheck(self.metadata.get("training_domain"))
        self.neighbours = NeighbourListCache(self.model.cutoff, skin)
        # On a GPU the pairs beyond the cutoff stay in the graph, so that between two rebuilds of
        # the neighbour list nothing in a step depends on the data (eqff.nn.forces.graph_for_model).
        self.energy_forces = EnergyForcesFunction(self.model, compile, static_shapes=self.device.type == "cuda")
        self.timings = Timings()
        self._last_graph: tuple[np.ndarray, dict[str, torch.Tensor]] | None = None

    def check_elements(self, atomic_numbers: np.ndarray) -> None:
        """Raise :class:`UnknownElementError` if any atomic number is not one the model knows."""
        unknown = sorted(set(np.unique(atomic_numbers).tolist()) - self.elements)
        if unknown:
            raise UnknownElementError(
                f"elements {element_names(unknown)} are not among those this model was trained on ({element_names(self.elements)})"
            )

    def __call__(
        self, atomic_numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, compute_stress: bool
    ) -> dict[str, np.ndarray]:
        """Energy (eV, float), forces (n, 3) eV/Å and, if asked, stress (3, 3) eV/Å³ of one structure.

        A committee's are its members' means, and it adds ``energy_uncertainty`` (eV, float) and
        ``forces_uncertainty`` (n,) eV/Å (:data:`eqff.data.keys.ENERGY_UNCERTAINTY` and
        :data:`eqff.data.keys.FORCES_UNCERTAINTY`).

        Args:
            atomic_numbers: (n,); positions: (n, 3) Å; cell: (3, 3) Å; pbc: (3,) bool.
            compute_stress: requires a periodic structure.
        """
        atomic_numbers = np.asarray(atomic_numbers)
        if atomic_numbers.ndim != 1 or np.shape(positions) != (len(atomic_numbers), 3):
            raise EqffInputError(
                f"need atomic numbers (n,) and positions (n, 3), got {atomic_numbers.shape} and {np.shape(positions)}"
            )
        self.check_elements(atomic_numbers)
        self.check_domain(atomic_numbers)
        if compute_stress and not np.all(pbc):
            raise EqffInputError("stress is defined only for structures periodic in all three directions")
        start = _now(self.device)
        edge_index, cell_shifts = self.neighbours(positions, atomic_numbers, cell, pbc)
        built = _now(self.device)
        graph = self._graph(atomic_numbers, positions, cell, pbc, edge_index, cell_shifts)
        with torch_threads(call_threads(len(atomic_numbers), self.threads)):
            out = self.energy_forces(graph, compute_stress)
        result = {
            keys.ENERGY: out[keys.ENERGY].detach().double().sum().item(),
            keys.FORCES: out[keys.FORCES].detach().double().cpu().numpy(),
        }
        if compute_stress:
            result[keys.STRESS] = out[keys.STRESS][0].detach().double().cpu().numpy()
        if self.gives_uncertainty:
            result[keys.ENERGY_UNCERTAINTY] = out[keys.ENERGY_UNCERTAINTY].detach().double().sum().item()
            result[keys.FORCES_UNCERTAINTY] = out[keys.FORCES_UNCERTAINTY].detach().double().cpu().numpy()
        self.timings = Timings(neighbour_list=built - start, model=_now(self.device) - built)
        return result

    def _graph(
        self,
        atomic_numbers: np.ndarray,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: np.ndarray,
        edge_index: np.ndarray,
        cell_shifts: np.ndarray,
    ) -> dict[str, torch.Tensor]:
        """The structure's graph on the model's device. Between two rebuilds of the neighbour
        list (the cache returns the same ``edge_index`` array, and the atoms, cell and pbc are
        unchanged) only the positions are copied to the device; the other tensors are the last
        call's."""
        if self._last_graph is not None and self._last_graph[0] is edge_index:
            return {**self._last_graph[1], keys.POSITIONS: centred_positions(positions, self.dtype, self.device)}
        graph = structure_to_graph(atomic_numbers, positions, cell, pbc, edge_index, cell_shifts, self.dtype, self.device)
        self._last_graph = (edge_index, graph)
        return graph


def _now(device: torch.device) -> float:
    """A wall-clock time in seconds, after the device's queued work has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
