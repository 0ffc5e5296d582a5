"""metatomic: an eqff model as a metatomic ``AtomisticModel``, for LAMMPS, i-PI, ASE and other engines.

:func:`export_metatomic` writes a TorchScript file that any engine with a metatomic interface
loads (LAMMPS' ``pair_style metatomic``, i-PI's ``metatomic`` driver, metatomic-ase's
``MetatomicCalculator``, ...)::

    from eqff.integrations.metatomic import export_metatomic

    export_metatomic("painn-aspirin", "painn-aspirin.pt")  # or `eqff export --format metatomic`

The file holds :class:`MetatomicEqffModel`, which computes the ``"energy"`` output in eV, per
system or per atom; the engine takes forces (and the stress) as gradients of it by autograd,
as metatomic expects of a conservative potential. Inputs are in Å (``length_unit``
``"angstrom"``); the engine converts its own units. The model asks the engine for one full
neighbour list at its cutoff, strict (no pair beyond the cutoff), and builds eqff's graph
(:mod:`eqff.data.keys`) from it.

Pair convention: metatomic's pair (``first_atom`` i, ``second_atom`` j, cell shift S) has the
vector ``positions[j] - positions[i] + S @ cell`` (``System.add_neighbor_list``), which is eqff's
edge ``edge_index = (i, j)``, ``cell_shifts = S`` (:data:`eqff.data.keys.CELL_SHIFTS`). The
model recomputes the vectors from positions, cell and shifts (it does not read the list's
stored vectors), so gradients reach positions and cell as in eqff's own calculators.

``interaction_range`` is the model's receptive field, :func:`receptive_field_hops` times the
cutoff, not the cutoff: the energy of an atom depends on atoms that many neighbour hops away
(metatomic: "for a message passing model, this is the cutoff of one environment times the
number of message passing steps"). Engines that split a system into domains (LAMMPS with
MPI) need ghost atoms that far, or they get wrong energies near domain boundaries.

``selected_atoms`` (LAMMPS: the local atoms, the others being ghosts) selects the atoms whose
energies are summed (or returned, per atom); all atoms of a system are still the model's input.

Needs ``metatomic-torch`` (imported when this module is imported).
"""

import os
from pathlib import Path
from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)
from torch import nn

from eqff.data import keys
from eqff.models import (
    EGNN,
    SEGNN,
    TFN,
    Committee,
    DimeNetPlusPlus,
    GemNetT,
    PaiNN,
    Ponita,
    SchNet,
    architecture_name,
)

ENERGY_OUTPUT = "energy"
"""The name metatomic gives the potential energy output."""

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}

SUPPORTED_DEVICES = ["cpu", "cuda"]
"""Devices the exported model declares, in order of preference (engines pick the first available
one unless told otherwise)."""


class TorchScriptError(RuntimeError):
    """The model does not compile with ``torch.jit.script``, so it cannot be saved as a metatomic model."""


def receptive_field_hops(model: nn.Module) -> int:
    """How many neighbour hops away an atom's energy depends on other atoms.

    PaiNN, PONITA, TFN, SchNet and EGNN: one hop per interaction (message passing) layer (EGNN's
    position updates, read by the next layer's distances, reach no farther than its messages).
    SEGNN: one more, for the
    node attributes (the mean spherical harmonics of an atom's edges) that its embedding and
    every layer read. GemNet-T: two hops per block (the triplet interaction reads the messages
    of the neighbour's edges; the edge update after the atom update reads the neighbour's
    atom embedding) plus one for the first edge embedding. DimeNet++: one hop per interaction
    block (the triplet step reads the messages of the neighbour's edges) plus one for the first
    messages, which read both atoms of their edge. A committee: that of its members (it exports
    their mean energy). ``tests/test_metatomic.py`` checks
    these numbers on a chain of atoms, each within the cutoff of its two neighbours only.
    """
    if isinstance(model, PaiNN):
        return len(model.interactions)
    if isinstance(model, Ponita):
        return len(model.blocks)
    if isinstance(model, TFN):
        return len(model.layers)
    if isinstance(model, SchNet):
        return len(model.interactions)
    if isinstance(model, EGNN):
        return len(model.layers) + 1  # and its last layer, which updates no position
    if isinstance(model, SEGNN):
        return len(model.layers) + 1
    if isinstance(model, GemNetT):
        return 2 * len(model.interactions) + 1
    if isinstance(model, DimeNetPlusPlus):
        return len(model.interactions) + 1
    if isinstance(model, Committee):
        return receptive_field_hops(model.members[0])
    raise ValueError(f"no receptive field known for {type(model).__name__}")


class MetatomicEqffModel(nn.Module):
    """An eqff model behind metatomic's model interface: systems → ``"energy"`` TensorMap, eV.

    (``typing``'s ``List``, ``Dict`` and ``Optional`` here, not the builtins: metatomic checks
    that ``forward``'s annotations are exactly ``List[System]``, ``Dict[str, ModelOutput]``,
    ``Optional[Labels]`` and ``Dict[str, TensorMap]``.)

    Args:
        model: an eqff model in eval mode, in the dtype the engine will give positions in.

    ``forward(systems, outputs, selected_atoms)`` builds one eqff graph of all ``systems`` (a
    batch) from their positions, cells, pbc, types and the neighbour list of
    :meth:`requested_neighbor_lists`, runs the model and returns, if ``outputs`` asks for
    ``"energy"``, one block with samples ``["system"]`` (values (B, 1)) or, for a per-atom
    request, ``["system", "atom"]`` (values (n_selected, 1)), and the single property
    ``"energy"``. Other outputs are not computed.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.training:
            raise ValueError("the eqff model must be in eval mode")
        self.model = model
        self.cutoff = float(model.cutoff)
        self.energy_output = ENERGY_OUTPUT  # an attribute: TorchScript reads no global strings
        self.neighbour_options = NeighborListOptions(cutoff=self.cutoff, full_list=True, strict=True)
        parameter = next(model.parameters())
        self.register_buffer("dtype_probe", torch.zeros(0, dtype=parameter.dtype, device=parameter.device))

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        """One full, strict neighbour list at the model's cutoff."""
        return [self.neighbour_options]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels],
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        if self.energy_output not in outputs:
            return results
        device = self.dtype_probe.device
        if len(systems) > 0:
            device = systems[0].positions.device
        per_atom = outputs[self.energy_output].sample_kind == "atom"

        atomic_energies = self._atomic_energies(systems)  # (n,) over all atoms of all systems
        sizes = [len(system) for system in systems]
        counts = torch.tensor(sizes, dtype=torch.long, device=device)  # (B,)
        first_atom = torch.cumsum(counts, 0) - counts  # (B,) index of each system's first atom
        if selected_atoms is None:
            system_of_atom = torch.repeat_interleave(torch.arange(len(systems), device=device), counts)  # (n,)
            atom_in_system = torch.arange(atomic_energies.shape[0], device=device) - first_atom[system_of_atom]  # (n,)
            selected = torch.arange(atomic_energies.shape[0], device=device)  # (n,)
        else:
            system_of_atom = selected_atoms.column("system").to(device=device, dtype=torch.long)  # (m,)
            atom_in_system = selected_atoms.column("atom").to(device=device, dtype=torch.long)  # (m,)
            selected = first_atom[system_of_atom] + atom_in_system  # (m,) indices into atomic_energies
        selected_energies = atomic_energies.index_select(0, selected)  # (m,)

        if per_atom:
            values = selected_energies.unsqueeze(-1)  # (m, 1)
            samples = Labels(["system", "atom"], torch.stack([system_of_atom, atom_in_system], dim=1).to(torch.int32))
        else:
            totals = atomic_energies.new_zeros(len(systems))  # (B,)
            values = totals.index_add(0, system_of_atom, selected_energies).unsqueeze(-1)  # (B, 1)
            samples = Labels(["system"], torch.arange(len(systems), device=device, dtype=torch.int32).unsqueeze(-1))
        block = TensorBlock(
            values=values,
            samples=samples,
            components=torch.jit.annotate(List[Labels], []),
            properties=Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32, device=device)),
        )
        keys_ = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))  # one block, key "_" = 0
        results[self.energy_output] = TensorMap(keys_, [block])
        return results

    def _atomic_energies(self, systems: List[System]) -> torch.Tensor:
        """(n,) eV: the model's per-atom energies of all atoms of ``systems``, in order."""
        if len(systems) == 0:
            return self.dtype_probe.new_zeros(0)
        numbers: List[torch.Tensor] = []
        positions: List[torch.Tensor] = []
        cells: List[torch.Tensor] = []
        pbcs: List[torch.Tensor] = []
        batch: List[torch.Tensor] = []
        edges: List[torch.Tensor] = []
        shifts: List[torch.Tensor] = []
        offset = 0
        for index, system in enumerate(systems):
            pairs = system.get_neighbor_list(self.neighbour_options).samples.values  # (E, 5) i, j, S_a, S_b, S_c
            numbers.append(system.types.to(torch.long))  # (n_s,)
            positions.append(system.positions)  # (n_s, 3) Å
            cells.append(system.cell)  # (3, 3) Å, rows
            pbcs.append(system.pbc)  # (3,)
            batch.append(torch.full((len(system),), index, dtype=torch.long, device=system.positions.device))
            edges.append(pairs[:, 0:2].to(torch.long).T + offset)  # (2, E) centre i, neighbour j
            shifts.append(pairs[:, 2:5].to(system.positions.dtype))  # (E, 3)
            offset += len(system)
        graph = {
            keys.ATOMIC_NUMBERS: torch.cat(numbers),
            keys.POSITIONS: torch.cat(positions),
            keys.CELL: torch.stack(cells),
            keys.PBC: torch.stack(pbcs),
            keys.BATCH: torch.cat(batch),
            keys.EDGE_INDEX: torch.cat(edges, dim=1),
            keys.CELL_SHIFTS: torch.cat(shifts),
        }
        return self.model(graph)[keys.ATOMIC_ENERGIES]


def build_atomistic_model(model: nn.Module, content: dict | None = None, name: str = "") -> AtomisticModel:
    """``model`` (an eqff model, eval mode, in the dtype to export) wrapped as a metatomic ``AtomisticModel``.

    Args:
        model: its ``elements`` become the atomic types, its cutoff the neighbour-list cutoff.
        content: the model file's content (:func:`eqff.model_file.read_model_file`), for the
            metadata; default: none.
        name: the model's name in the metadata; default: its architecture.
    """
    dtype = next(model.parameters()).dtype
    dtype_name = str(dtype).removeprefix("torch.")
    if dtype_name not in DTYPES:
        raise ValueError(f"metatomic models are float32 or float64, not {dtype_name}")
    architecture = architecture_name(model)
    hops = receptive_field_hops(model)
    capabilities = ModelCapabilities(
        outputs={ENERGY_OUTPUT: ModelOutput(unit="eV", sample_kind="atom", explicit_gradients=[])},
        atomic_types=[int(z) for z in model.elements],
        interaction_range=hops * float(model.cutoff),
        length_unit="angstrom",
        supported_devices=SUPPORTED_DEVICES,
        dtype=dtype_name,
    )
    metadata = ModelMetadata(
        name=name or architecture,
        description=_description(architecture, model, hops, content or {}),
        extra=_extra_metadata(architecture, content or {}),
    )
    return AtomisticModel(MetatomicEqffModel(model.eval()).eval(), metadata, capabilities)


def export_metatomic(
    model_path_or_name: str | os.PathLike, out_path: str | os.PathLike, dtype: str | None = None
) -> Path:
    """Write the eqff model in a model file (or a shipped potential, e.g. ``"painn-aspirin"``) as a
    metatomic model file; return its path.

    Args:
        model_path_or_name: a ``.eqff`` file or the name of a shipped potential.
        out_path: the TorchScript file to write (conventionally ``.pt``).
        dtype: "float32" or "float64"; default: the dtype the model file was saved in.

    Raises :class:`~eqff.errors.ModelFileError` for a missing or bad model file, ``ValueError``
    for an unknown dtype, :class:`TorchScriptError` for a model that TorchScript cannot compile,
    ``FileNotFoundError`` where the folder of ``out_path`` does not exist.
    """
    from eqff.model_file import load_model, resolve_model_path

    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} or None, got {dtype!r}")
    model, content = load_model(model_path_or_name, dtype=None if dtype is None else DTYPES[dtype])
    name = resolve_model_path(model_path_or_name).stem
    atomistic = build_atomistic_model(model, content, name=name)
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out_path}: no folder {out_path.parent}")
    try:
        atomistic.save(str(out_path))
    except RuntimeError as error:
        if "TorchScript" not in str(error):  # metatomic's "could not convert the module to TorchScript"
            raise
        cause = error.__cause__ or error
        raise TorchScriptError(
            f"the {content['architecture']} model does not compile with TorchScript, which metatomic models "
            f"need: {str(cause).strip().splitlines()[0]}"
        ) from error
    return out_path


def _description(architecture: str, model: nn.Module, hops: int, content: dict) -> str:
    """One paragraph: what the model is, what it was trained on, its inputs and outputs."""
    metadata = content.get("metadata", {})
    training = metadata.get("training_data") or metadata.get("dataset")
    trained = f" trained on {training}" if training else ""
    return (
        f"eqff {architecture} potential{trained}. Elements {list(model.elements)}, cutoff {model.cutoff} Å, "
        f"{hops} neighbour hops of receptive field. Output: energy (eV), per system or per atom; "
        "forces and stress are its gradients (conservative)."
    )


def _extra_metadata(architecture: str, content: dict) -> dict[str, str]:
    """Strings for ``ModelMetadata.extra``: architecture, dtype saved, eqff version, creation date."""
    metadata = content.get("metadata", {})
    extra = {"eqff_architecture": architecture}
    for key in ("eqff_version", "created", "training_data", "dataset"):
        if metadata.get(key) is not None:
            extra[f"eqff_{key}"] = str(metadata[key])
    if "dtype" in content:
        extra["eqff_saved_dtype"] = str(content["dtype"])
    return extra
