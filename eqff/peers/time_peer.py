"""Time one peer force field, at random weights, per energy+forces call or per training step on CPU.

Run by a peer's own venv's python, never by eqff's: MACE and SchNetPack's PaiNN by that of the
peers' venv (made by ``eqff/peers/create_venv.sh``), NequIP by that of its own (made by
``eqff/peers/create_nequip_venv.sh``). The peers pin dependencies that clash with eqff's, so this
script does not import eqff. ``eqff report --peers/--nequip`` and ``eqff bench --training-step``
run it as a subprocess, in the same run as eqff's own timings.

Usage::

    python time_peer.py --peer {mace,nequip,schnetpack-painn} --structure FILE \\
        --dtype {float32,float64} --repeats N [--training-step] [--threads N] \\
        [--hyperparameters JSON]

``--hyperparameters`` overrides entries of the peer's default size (:data:`MACE_RMD17`,
:data:`NEQUIP_RMD17`, :data:`PAINN_DEFAULT`), e.g. ``'{"n_rbf": 8}'``; ``--threads`` sets
``torch.set_num_threads`` (default: torch's own choice). NequIP is timed per call only.

Each peer is built at random weights (``torch.manual_seed(0)``) for the elements H, C, N, O. Per
call (without ``--training-step``), it is called through its own ASE calculator, as a user would
run it, so the time includes the peer's own neighbour list and data conversion:

- ``mace``: MACE at the size of the rMD17 models of the MACE paper (see :data:`MACE_RMD17`),
  through ``mace.calculators.MACECalculator``, which rebuilds its (matscipy) neighbour list on
  every call.
- ``schnetpack-painn``: SchNetPack 2's PaiNN at its default size (see :data:`PAINN_DEFAULT`),
  through ``schnetpack.interfaces.SpkCalculator`` with SchNetPack's fastest neighbour list for
  this protocol, ``SkinNeighborList`` around ``MatScipyNeighborList`` (see
  :func:`painn_neighbour_list`).
- ``nequip``: NequIP at the size of its rMD17 models (see :data:`NEQUIP_RMD17`), in eager mode,
  through ``nequip.integrations.ase.NequIPCalculator`` with the transforms NequIP's own loaders
  give it (type mapping and a matscipy neighbour list rebuilt on every call), as
  ``NequIPCalculator._from_saved_model`` makes it for a checkpoint or package (see
  :func:`nequip_calculator` on why not its AOTInductor-compiled model).

Timing protocol (the same as eqff's ``time_calls``): the calculator is attached to the Atoms;
3 + N times, every position moves by a normal jitter of 1e-4 Å (numpy ``default_rng(0)``) and
``atoms.get_forces()`` is timed with ``time.perf_counter``; the first 3 calls are discarded and
the median of the rest is reported in ms.

With ``--training-step``, the frames of ``--structure`` (all of them, extxyz with energy (eV) and
forces (eV/Å) labels) are one batch, made once by the peer's own batching, and a training step is
timed as each package's trainer takes it: zero the gradients, predict energies and forces (forces
by autograd with ``create_graph=True``), an MSE loss on both against the labels, its backward and
an Adam step (torch's default settings):

- ``mace``: ``mace.data.AtomicData.from_config`` per frame and mace's torch_geometric
  ``DataLoader`` for the batch, ``model(batch, training=True)``, ``WeightedEnergyForcesLoss``
  (per-atom energy and force-component MSE, weights 1), as ``mace.tools.train.take_step``.
- ``schnetpack-painn``: ``AtomsConverter`` (``MatScipyNeighborList`` and SchNetPack's collate) for
  the batch, the model in training mode, ``ModelOutput`` MSE losses on energy and forces
  (weights 1), as ``AtomisticTask.training_step``.

The same protocol times each step: 3 warm-up steps, then the median of N in ms.

Output: exactly one JSON line on stdout::

    {"peer", "ms", "atoms", "dtype", "torch_threads", "versions", "description"}

and, with ``--training-step``, also ``"frames"`` (the batch size) and ``"pairs"`` (directed
neighbour pairs in the batch).

Everything else (warnings, the peers' logging) goes to stderr. A failure exits non-zero with a
message on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import typing
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, TextIO

import ase
import ase.io
import numpy as np
import torch

try:  # run as a script (the peers' venvs): train_peer.py beside it is on its sys.path
    from train_peer import NEQUIP_RMD17_MODEL
except ImportError:  # imported as a module of the eqff package (eqff's own tests)
    from .train_peer import NEQUIP_RMD17_MODEL

ELEMENTS = ("H", "C", "N", "O")
ATOMIC_NUMBERS = (1, 6, 7, 8)
WARMUP_CALLS = 3
JITTER = 1e-4  # Å, standard deviation of the per-call position noise

MACE_RMD17: dict[str, Any] = {
    "r_max": 5.0,  # Å
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 3,
    "num_interactions": 2,
    "hidden_irreps": "256x0e + 256x1o + 256x2e",
    "correlation": 3,
    "MLP_irreps": "16x0e",
    "radial_MLP": [64, 64, 64],
}
"""MACE hyperparameters of the rMD17 models of Batatia et al., "MACE: Higher Order Equivariant
Message Passing Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022
(arXiv:2206.07697): ScaleShiftMACE with 2 interactions of RealAgnosticResidualInteractionBlock,
256 channels with messages up to L = 2 (hidden irreps 256x0e + 256x1o + 256x2e), spherical
harmonics up to l = 3 (max_ell), correlation order 3 (4-body messages), cutoff r_max = 5 Å,
8 Bessel radial functions with a polynomial envelope of p = 5, radial MLP [64, 64, 64], a 16x0e
non-linear readout and SiLU gates.

Source: the run command given by the authors for the paper's experiments (README of the paper's
MACE code, "All the experiments of the paper can be reproduced ...", dataset rMD17, acac or
3bpa): max_ell=3, hidden_irreps='256x0e + 256x1o + 256x2e' (256x0e "only for invariant MACE"),
r_max=5.0, num_cutoff_basis=5, correlation=3, num_interactions=2, RealAgnosticResidualInteraction-
Block, scale-shift model; the 8 Bessel functions, radial MLP [64, 64, 64] and 16x0e readout are
the defaults of that code and of mace-torch. The L = 2 model is the paper's largest and slowest.
"""

MACE_AVG_NUM_NEIGHBOURS = 10.0
"""Normalisation of MACE's neighbour sums; it scales activations only, not the cost."""

PAINN_DEFAULT: dict[str, Any] = {
    "n_atom_basis": 128,
    "n_interactions": 3,
    "n_rbf": 20,
    "cutoff": 5.0,  # Å
    "shared_interactions": False,
    "shared_filters": False,
}
"""SchNetPack 2's default PaiNN (its configs model/representation/painn.yaml and
radial_basis/gaussian.yaml, cutoff 5 Å as in its md17/rmd17 experiment configs): 128 features,
3 interactions, 20 Gaussian radial functions, cosine cutoff 5 Å, interactions and filters not
shared, with an Atomwise energy head and Forces as the negative gradient."""

PAINN_SKIN = 0.5  # Å, the same skin as eqff's calculator default


# --- structure and timing ---------------------------------------------------------------------


def read_frames(path: Path) -> list[ase.Atoms]:
    """Every structure in ``path`` (extxyz or xyz, positions in Å), checked for H/C/N/O only."""
    frames = ase.io.read(path, index=":")
    unknown = sorted({symbol for atoms in frames for symbol in atoms.get_chemical_symbols()} - set(ELEMENTS))
    if unknown:
        raise ValueError(f"{path}: elements {unknown} are not among the peers' elements {ELEMENTS}")
    return frames


def check_labelled(frames: list[ase.Atoms]) -> None:
    """Raise ``ValueError`` unless every frame has energy (eV) and forces (eV/Å) labels."""
    if any(atoms.calc is None or not {"energy", "forces"} <= set(atoms.calc.results) for atoms in frames):
        raise ValueError("a training step needs frames labelled with energy and forces (extxyz energy= and forces)")


def time_forces(atoms: ase.Atoms, calculator: Any, repeats: int) -> float:
    """Median wall time in ms of ``repeats`` ``atoms.get_forces()`` calls through ``calculator``.

    Before each call every position moves by N(0, (1e-4 Å)²) noise (so ASE does not return cached
    results); the first :data:`WARMUP_CALLS` calls are discarded.
    """
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(0)
    times = []
    for call in range(WARMUP_CALLS + repeats):
        atoms.positions += rng.normal(scale=JITTER, size=atoms.positions.shape)
        start = time.perf_counter()
        atoms.get_forces()
        if call >= WARMUP_CALLS:
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def time_steps(step: Callable[[], None], repeats: int) -> float:
    """Median wall time in ms of ``repeats`` calls of ``step``, after :data:`WARMUP_CALLS` discarded ones."""
    times = []
    for call in range(WARMUP_CALLS + repeats):
        start = time.perf_counter()
        step()
        if call >= WARMUP_CALLS:
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def save_then_load(model: torch.nn.Module, load: Callable[[Path], Any]) -> Any:
    """``load(file)``, with ``model`` saved whole by ``torch.save`` in the temporary ``file``: the
    calculator as a user gets it from a model file."""
    with tempfile.TemporaryDirectory() as folder:
        model_file = Path(folder) / "model.pt"
        torch.save(model, model_file)
        return load(model_file)


def allow_full_unpickling() -> None:
    """Let ``torch.load`` unpickle whole objects, as the peers' loaders expect.

    Both calculators load the whole pickled model with ``torch.load`` (MACE passes no
    ``weights_only``; SchNetPack's ``load_model`` neither), and e3nn 0.4.4 loads its constants
    the same way at import; torch >= 2.6 refuses that by default. The files loaded are the
    model this script has just saved and the packages' own, so torch's documented switch
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set (mace-torch itself sets it on import).
    """
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"


class TrainingBatch(typing.NamedTuple):
    """A peer's training step on a batch made once: ``step()`` takes one step; ``pairs`` is the
    number of directed neighbour pairs in the batch."""

    step: Callable[[], None]
    pairs: int


# --- MACE -------------------------------------------------------------------------------------


def build_mace(dtype: str, hp: dict[str, Any]) -> torch.nn.Module:
    """A random-weight ScaleShiftMACE for H, C, N, O in ``dtype`` with the hyperparameters ``hp``
    (those of :data:`MACE_RMD17`)."""
    allow_full_unpickling()  # before e3nn 0.4.4 is imported: it torch.loads its constants.pt
    from e3nn import o3
    from mace import modules

    torch.set_default_dtype(getattr(torch, dtype))
    torch.manual_seed(0)
    return modules.ScaleShiftMACE(
        r_max=hp["r_max"],
        num_bessel=hp["num_bessel"],
        num_polynomial_cutoff=hp["num_polynomial_cutoff"],
        max_ell=hp["max_ell"],
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=hp["num_interactions"],
        num_elements=len(ATOMIC_NUMBERS),
        hidden_irreps=o3.Irreps(hp["hidden_irreps"]),
        MLP_irreps=o3.Irreps(hp["MLP_irreps"]),
        atomic_energies=np.zeros(len(ATOMIC_NUMBERS)),
        avg_num_neighbors=MACE_AVG_NUM_NEIGHBOURS,
        atomic_numbers=list(ATOMIC_NUMBERS),
        correlation=hp["correlation"],
        gate=torch.nn.functional.silu,
        radial_MLP=hp["radial_MLP"],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )


def mace_calculator(model: torch.nn.Module, dtype: str, hp: dict[str, Any]) -> Any:
    """MACE's own ASE calculator for ``model``, loaded from a saved file, on CPU in ``dtype``
    (its cutoff is the model's own, ``hp`` is not needed)."""
    from mace.calculators import MACECalculator

    return save_then_load(model, lambda file: MACECalculator(model_paths=str(file), device="cpu", default_dtype=dtype))


def mace_training_batch(model: torch.nn.Module, frames: list[ase.Atoms], hp: dict[str, Any]) -> TrainingBatch:
    """MACE's training step on ``frames`` as one batch, as ``mace.tools.train.take_step`` takes it.

    The batch is made as MACE's trainer makes its batches: a ``Configuration`` per frame with
    the labels under MACE's default keys (``REF_energy``, ``REF_forces``),
    ``AtomicData.from_config`` (matscipy neighbour list within ``hp["r_max"]`` Å) and mace's
    torch_geometric ``DataLoader``; the loss is ``WeightedEnergyForcesLoss`` with weights 1.
    """
    from mace import data
    from mace.modules.loss import WeightedEnergyForcesLoss
    from mace.tools import AtomicNumberTable, torch_geometric

    check_labelled(frames)
    keys = data.KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})
    z_table = AtomicNumberTable(list(ATOMIC_NUMBERS))
    dataset = []
    for atoms in frames:
        labelled = atoms.copy()
        labelled.info["REF_energy"] = atoms.get_potential_energy()
        labelled.arrays["REF_forces"] = atoms.get_forces()
        config = data.config_from_atoms(labelled, key_specification=keys)
        dataset.append(data.AtomicData.from_config(config, z_table=z_table, cutoff=hp["r_max"]))
    loader = torch_geometric.dataloader.DataLoader(dataset, batch_size=len(dataset), shuffle=False, drop_last=False)
    batch = next(iter(loader))
    batch_dict = batch.to_dict()
    loss_fn = WeightedEnergyForcesLoss(energy_weight=1.0, forces_weight=1.0)
    optimiser = torch.optim.Adam(model.parameters())
    model.train()

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        output = model(batch_dict, training=True, compute_force=True, compute_virials=False, compute_stress=False)
        loss_fn(pred=output, ref=batch).backward()
        optimiser.step()

    return TrainingBatch(step, int(batch.edge_index.shape[1]))


def mace_description(hp: dict[str, Any]) -> str:
    size = "rMD17 size, Batatia et al. 2022" if hp == MACE_RMD17 else "size as given"
    return (
        f"MACE ({size}): {hp['num_interactions']} interactions, "
        f"hidden irreps {hp['hidden_irreps']}, max_ell {hp['max_ell']}, correlation "
        f"{hp['correlation']}, r_max {hp['r_max']} Å, {hp['num_bessel']} Bessel, p="
        f"{hp['num_polynomial_cutoff']}"
    )


MACE_CALLS = "MACECalculator (matscipy neighbour list every call)"
MACE_TRAINING = (
    "batch by AtomicData.from_config and mace's torch_geometric DataLoader, WeightedEnergyForcesLoss, Adam, "
    "as mace.tools.train.take_step"
)


# --- SchNetPack PaiNN -------------------------------------------------------------------------


def import_schnetpack() -> Any:
    """``schnetpack``, imported despite its incompatibility with torch 2.13.

    schnetpack 2.1.1 imports ``T_co`` from ``torch.utils.data.dataloader``, which newer torch no
    longer defines: it is restored as the covariant TypeVar it was (used in annotations only).
    """
    import torch.utils.data.dataloader as dataloader

    if not hasattr(dataloader, "T_co"):
        dataloader.T_co = typing.TypeVar("T_co", covariant=True)
    allow_full_unpickling()
    import schnetpack

    return schnetpack


def build_painn(dtype: str, hp: dict[str, Any]) -> torch.nn.Module:
    """A random-weight SchNetPack NeuralNetworkPotential: PaiNN with the hyperparameters ``hp``
    (those of :data:`PAINN_DEFAULT`), energy, forces."""
    spk = import_schnetpack()
    torch.set_default_dtype(getattr(torch, dtype))
    torch.manual_seed(0)
    representation = spk.representation.PaiNN(
        n_atom_basis=hp["n_atom_basis"],
        n_interactions=hp["n_interactions"],
        radial_basis=spk.nn.GaussianRBF(n_rbf=hp["n_rbf"], cutoff=hp["cutoff"]),
        cutoff_fn=spk.nn.CosineCutoff(hp["cutoff"]),
        shared_interactions=hp["shared_interactions"],
        shared_filters=hp["shared_filters"],
    )
    return spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=hp["n_atom_basis"], output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )


def painn_neighbour_list(cutoff: float) -> Any:
    """SchNetPack's fastest neighbour list for the calls protocol, ``cutoff`` in Å.

    ``MatScipyNeighborList`` is the fastest of SchNetPack's full rebuilds (ASE, matscipy, torch);
    ``SkinNeighborList`` around it reuses the list while no atom moved more than half the skin
    (:data:`PAINN_SKIN`, as eqff's calculator does), which is SchNetPack's own MD setting.
    """
    spk = import_schnetpack()
    full = spk.transform.MatScipyNeighborList(cutoff=cutoff)
    return spk.transform.SkinNeighborList(full, cutoff_skin=PAINN_SKIN)


def painn_calculator(model: torch.nn.Module, dtype: str, hp: dict[str, Any]) -> Any:
    """SchNetPack's own ASE calculator for ``model``, loaded from a saved file: eV and Å, CPU, ``dtype``."""
    spk = import_schnetpack()
    return save_then_load(model, lambda file: spk.interfaces.SpkCalculator(
        model_file=str(file),
        neighbor_list=painn_neighbour_list(hp["cutoff"]),
        energy_key="energy",
        force_key="forces",
        energy_unit="eV",
        position_unit="Angstrom",
        device="cpu",
        dtype=getattr(torch, dtype),
    ))  # fmt: skip


def painn_training_batch(model: torch.nn.Module, frames: list[ase.Atoms], hp: dict[str, Any]) -> TrainingBatch:
    """SchNetPack's training step on ``frames`` as one batch, as ``AtomisticTask.training_step``
    and Lightning's Adam step take it.

    The batch is made by ``AtomsConverter`` (``MatScipyNeighborList`` within ``hp["cutoff"]`` Å,
    then SchNetPack's own collate, ``_atoms_collate_fn``), with the labels as targets; the loss is
    the sum of ``ModelOutput`` MSE losses on ``energy`` and ``forces`` with weights 1. The model
    is called on a shallow copy of the batch, since it writes its outputs into its input dict.
    """
    spk = import_schnetpack()
    converter = spk.interfaces.AtomsConverter(
        neighbor_list=spk.transform.MatScipyNeighborList(cutoff=hp["cutoff"]), dtype=torch.get_default_dtype()
    )
    batch = converter(frames)
    check_labelled(frames)
    dtype = torch.get_default_dtype()
    energies = torch.tensor([atoms.get_potential_energy() for atoms in frames], dtype=dtype)  # (B,)
    forces = torch.as_tensor(np.concatenate([atoms.get_forces() for atoms in frames]), dtype=dtype)  # (n, 3)
    targets = {"energy": energies, "forces": forces}
    outputs = [spk.task.ModelOutput(name, loss_fn=torch.nn.MSELoss(), loss_weight=1.0, metrics={})
               for name in ("energy", "forces")]  # fmt: skip
    optimiser = torch.optim.Adam(model.parameters())
    model.train()

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        predicted = model(dict(batch))
        loss = sum(output.calculate_loss(predicted, targets) for output in outputs)
        loss.backward()
        optimiser.step()

    return TrainingBatch(step, int(batch[spk.properties.idx_i].shape[0]))


def painn_description(hp: dict[str, Any]) -> str:
    size = "default size" if hp == PAINN_DEFAULT else "size as given"
    shared = "unshared" if not (hp["shared_interactions"] or hp["shared_filters"]) else "shared"
    return (
        f"SchNetPack PaiNN ({size}): n_atom_basis {hp['n_atom_basis']}, "
        f"{hp['n_interactions']} interactions, {hp['n_rbf']} Gaussian RBF, cosine cutoff "
        f"{hp['cutoff']} Å, {shared}"
    )


PAINN_CALLS = f"SpkCalculator with SkinNeighborList(MatScipyNeighborList, skin {PAINN_SKIN} Å)"
PAINN_TRAINING = (
    "batch by AtomsConverter (MatScipyNeighborList, SchNetPack's collate), ModelOutput MSE losses, Adam, "
    "as AtomisticTask.training_step"
)


# --- NequIP -----------------------------------------------------------------------------------

NEQUIP_RMD17: dict[str, Any] = {key: value for key, value in NEQUIP_RMD17_MODEL.items()
                                if key not in ("model_dtype", "seed")}  # fmt: skip
"""``NequIPGNNModel`` arguments of NequIP at the size of its rMD17 models: ``NEQUIP_RMD17_MODEL``
of ``train_peer.py`` (see there for the size and its source), the size ``eqff train-peer`` trains,
imported so that the size timed and the size trained are one, less its dtype (``--dtype`` here)
and seed (0 here, as for the other peers)."""

NEQUIP_AVG_NUM_NEIGHBOURS = 10.0
"""Normalisation of NequIP's neighbour sums (the value of NequIP's rMD17 aspirin input file); it
scales activations only, not the cost."""


def build_nequip(dtype: str, hp: dict[str, Any]) -> torch.nn.Module:
    """A random-weight ``NequIPGNNModel`` for H, C, N, O in ``dtype`` with the hyperparameters ``hp``
    (those of :data:`NEQUIP_RMD17`), in eval mode, as NequIP's calculator requires.

    NequIP's builders need its global state set first (TF32 off, as ``nequip-compile`` and the
    calculator's loaders default to).
    """
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state(allow_tf32=False)
    model = NequIPGNNModel(seed=0, model_dtype=dtype, type_names=list(ELEMENTS),
                           avg_num_neighbors=NEQUIP_AVG_NUM_NEIGHBOURS, **hp)  # fmt: skip
    return model.eval()


def nequip_calculator(model: torch.nn.Module, dtype: str, hp: dict[str, Any]) -> Any:
    """NequIP's own ASE calculator on ``model`` (a ``GraphModel``, already in ``dtype``), on CPU.

    Its transforms are those ``NequIPCalculator._from_saved_model`` and ``from_compiled_model``
    give it, ``nequip.integrations.utils.basic_transforms`` (chemical symbols as type names, and
    a ``NeighborListTransform`` within the model's r_max with NequIP's default backend,
    matscipy), on the eager model, as ``_from_saved_model`` loads a checkpoint or package.

    NequIP recommends its AOTInductor-compiled model for inference (``nequip-compile --mode
    aotinductor --target ase``; its TorchScript mode is refused with torch >= 2.10). Compiling this
    model so (``nequip.utils.aot.aot_export_model`` with the ase target's fields) had not finished
    after 50 minutes (14 CPU minutes) on a busy 2-core CPU, so the eager model is what is timed.
    """
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms
    from nequip.nn import graph_model

    type_names = model.metadata[graph_model.TYPE_NAMES_KEY].split(" ")
    transforms = basic_transforms(model.metadata, float(model.metadata[graph_model.R_MAX_KEY]), type_names,
                                  {name: name for name in type_names})  # fmt: skip
    return NequIPCalculator(model=model, device="cpu", transforms=transforms)


def nequip_description(hp: dict[str, Any]) -> str:
    size = "rMD17 size, Batzner et al. 2022" if hp == NEQUIP_RMD17 else "size as given"
    parity = "both parities" if hp["parity"] else "one parity"
    return (
        f"NequIP ({size}): {hp['num_layers']} layers, l_max {hp['l_max']} with {parity}, {hp['num_features']} "
        f"features, r_max {hp['r_max']} Å, {hp['num_bessels']} Bessel, p={hp['polynomial_cutoff_p']}, radial MLP "
        f"{hp['radial_mlp_depth']} x {hp['radial_mlp_width']}"
    )


NEQUIP_CALLS = "NequIPCalculator on the eager model (matscipy neighbour list every call)"


# --- the peers --------------------------------------------------------------------------------


class Peer(typing.NamedTuple):
    package: str  # distribution name whose version is reported
    defaults: dict[str, Any]  # hyperparameters of the size timed unless --hyperparameters overrides them
    build: Callable[[str, dict[str, Any]], torch.nn.Module]  # (dtype, hyperparameters) -> random-weight model
    # (model, dtype, hyperparameters) -> the peer's ASE calculator on the model
    calculator: Callable[[torch.nn.Module, str, dict[str, Any]], Any]
    description: Callable[[dict[str, Any]], str]  # hyperparameters -> the model in words
    calls: str  # how a call is made, in words
    # (model, frames, hyperparameters) -> the peer's training step on the frames; None: timed per call only
    training_batch: Callable[[torch.nn.Module, list[ase.Atoms], dict[str, Any]], TrainingBatch] | None
    training: str = ""  # how a training step is taken, in words


PEERS: dict[str, Peer] = {
    "mace": Peer("mace-torch", MACE_RMD17, build_mace, mace_calculator, mace_description, MACE_CALLS,
                 mace_training_batch, MACE_TRAINING),
    "nequip": Peer("nequip", NEQUIP_RMD17, build_nequip, nequip_calculator, nequip_description, NEQUIP_CALLS, None),
    "schnetpack-painn": Peer("schnetpack", PAINN_DEFAULT, build_painn, painn_calculator, painn_description,
                             PAINN_CALLS, painn_training_batch, PAINN_TRAINING),
}  # fmt: skip


def time_peer(name: str, structure: Path, dtype: str, repeats: int, hp: dict[str, Any]) -> dict[str, Any]:
    """Build ``name``, make its own calculator on it and time it per call; the JSON record."""
    peer = PEERS[name]
    atoms = read_frames(structure)[0]
    calculator = peer.calculator(peer.build(dtype, hp), dtype, hp)
    ms = time_forces(atoms, calculator, repeats)
    return {
        "peer": name,
        "ms": ms,
        "atoms": len(atoms),
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "versions": {peer.package: version(peer.package), "torch": version("torch")},
        "description": f"{peer.description(hp)}; {peer.calls}",
    }


def time_training_step(name: str, structure: Path, dtype: str, repeats: int, hp: dict[str, Any]) -> dict[str, Any]:
    """Build ``name`` and time its training step on all frames of ``structure`` as one batch; the JSON record."""
    peer = PEERS[name]
    frames = read_frames(structure)
    training = peer.training_batch(peer.build(dtype, hp), frames, hp)
    ms = time_steps(training.step, repeats)
    return {
        "peer": name,
        "ms": ms,
        "frames": len(frames),
        "atoms": sum(len(atoms) for atoms in frames),
        "pairs": training.pairs,
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "versions": {peer.package: version(peer.package), "torch": version("torch")},
        "description": f"{peer.description(hp)}; {peer.training}",
    }


# --- command line -----------------------------------------------------------------------------


def json_object(text: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object (argparse type of ``--hyperparameters``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``hyperparameters`` is the peer's default size with ``--hyperparameters`` merged in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True, choices=sorted(PEERS))
    parser.add_argument("--structure", required=True, type=Path, help="extxyz/xyz file (Å)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls or steps after 3 warm-up ones")
    parser.add_argument("--training-step", action="store_true",
                        help="time training steps on all frames of --structure (labelled) as one batch")  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--hyperparameters", type=json_object, default={},
                        help="JSON object overriding entries of the peer's default size")  # fmt: skip
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if not args.structure.is_file():
        parser.error(f"--structure {args.structure} is not a file")
    if args.training_step and PEERS[args.peer].training_batch is None:
        parser.error(f"--training-step: {args.peer} is timed per call only")
    defaults = PEERS[args.peer].defaults
    unknown = sorted(set(args.hyperparameters) - set(defaults))
    if unknown:
        parser.error(f"--hyperparameters: {unknown} are not hyperparameters of {args.peer} ({', '.join(defaults)})")
    args.hyperparameters = {**defaults, **args.hyperparameters}
    return args


def stdout_for_json() -> TextIO:
    """The real stdout, kept for the JSON line; file descriptor 1 then goes to stderr.

    The peers print and log to stdout (MACE prints notices from its calculator), and so may C
    extensions; sending file descriptor 1 to stderr keeps stdout to the one JSON line.
    """
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = stdout_for_json()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    timer = time_training_step if args.training_step else time_peer
    try:
        record = timer(args.peer, args.structure, args.dtype, args.repeats, args.hyperparameters)
    except Exception as error:  # report any failure of a peer as one clear line, then the trace
        traceback.print_exc()
        print(f"time_peer.py: timing {args.peer} on {args.structure} failed: {error!r}", file=sys.stderr)
        return 1
    out.write(json.dumps(record) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
