"""Time one peer force field, at random weights, per energy+forces call on CPU.

Run by the peers venv's python (made by ``eqff/peers/create_venv.sh``), never by eqff's own: the
peers pin dependencies that clash with eqff's, so this script does not import eqff. ``eqff report
--peers`` runs it as a subprocess, in the same run as eqff's own timings.

Usage::

    python time_peer.py --peer {mace,schnetpack-painn} --structure FILE \\
        --dtype {float32,float64} --repeats N

Each peer is built at random weights (``torch.manual_seed(0)``) for the elements H, C, N, O and
called through its own ASE calculator, as a user would run it, so the time includes the peer's
own neighbour list and data conversion:

- ``mace``: MACE at the size of the rMD17 models of the MACE paper (see :data:`MACE_RMD17`),
  through ``mace.calculators.MACECalculator``, which rebuilds its (matscipy) neighbour list on
  every call.
- ``schnetpack-painn``: SchNetPack 2's PaiNN at its default size (see :data:`PAINN_DEFAULT`),
  through ``schnetpack.interfaces.SpkCalculator`` with SchNetPack's fastest neighbour list for
  this protocol, ``SkinNeighborList`` around ``MatScipyNeighborList`` (see
  :func:`painn_neighbour_list`).

Timing protocol (the same as eqff's ``time_calls``): the calculator is attached to the Atoms;
3 + N times, every position moves by a normal jitter of 1e-4 Å (numpy ``default_rng(0)``) and
``atoms.get_forces()`` is timed with ``time.perf_counter``; the first 3 calls are discarded and
the median of the rest is reported in ms.

Output: exactly one JSON line on stdout::

    {"peer", "ms", "atoms", "dtype", "torch_threads", "versions", "description"}

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


def read_structure(path: Path) -> ase.Atoms:
    """The first structure in ``path`` (extxyz or xyz, positions in Å), checked for H/C/N/O only."""
    atoms = ase.io.read(path, index=0)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(ELEMENTS))
    if unknown:
        raise ValueError(f"{path}: elements {unknown} are not among the peers' elements {ELEMENTS}")
    return atoms


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


def allow_full_unpickling() -> None:
    """Let ``torch.load`` unpickle whole objects, as the peers' loaders expect.

    Both calculators load the whole pickled model with ``torch.load`` (MACE passes no
    ``weights_only``; SchNetPack's ``load_model`` neither), and e3nn 0.4.4 loads its constants
    the same way at import; torch >= 2.6 refuses that by default. The files loaded are the
    model this script has just saved and the packages' own, so torch's documented switch
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set (mace-torch itself sets it on import).
    """
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"


# --- MACE -------------------------------------------------------------------------------------


def build_mace(dtype: str) -> torch.nn.Module:
    """A random-weight ScaleShiftMACE of :data:`MACE_RMD17` size for H, C, N, O in ``dtype``."""
    allow_full_unpickling()  # before e3nn 0.4.4 is imported: it torch.loads its constants.pt
    from e3nn import o3
    from mace import modules

    torch.set_default_dtype(getattr(torch, dtype))
    torch.manual_seed(0)
    hp = MACE_RMD17
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


def mace_calculator(model_file: Path, dtype: str) -> Any:
    """MACE's own ASE calculator for the model saved in ``model_file``, on CPU in ``dtype``."""
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(model_file), device="cpu", default_dtype=dtype)


def mace_description() -> str:
    hp = MACE_RMD17
    return (
        f"MACE (rMD17 size, Batatia et al. 2022): {hp['num_interactions']} interactions, "
        f"hidden irreps {hp['hidden_irreps']}, max_ell {hp['max_ell']}, correlation "
        f"{hp['correlation']}, r_max {hp['r_max']} Å, {hp['num_bessel']} Bessel, p="
        f"{hp['num_polynomial_cutoff']}; MACECalculator (matscipy neighbour list every call)"
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


def build_painn(dtype: str) -> torch.nn.Module:
    """A random-weight SchNetPack NeuralNetworkPotential: PaiNN (:data:`PAINN_DEFAULT`), energy, forces."""
    spk = import_schnetpack()
    torch.set_default_dtype(getattr(torch, dtype))
    torch.manual_seed(0)
    hp = PAINN_DEFAULT
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


def painn_neighbour_list() -> Any:
    """SchNetPack's fastest neighbour list for this protocol.

    ``MatScipyNeighborList`` is the fastest of SchNetPack's full rebuilds (ASE, matscipy, torch);
    ``SkinNeighborList`` around it reuses the list while no atom moved more than half the skin
    (:data:`PAINN_SKIN`, as eqff's calculator does), which is SchNetPack's own MD setting.
    """
    spk = import_schnetpack()
    full = spk.transform.MatScipyNeighborList(cutoff=PAINN_DEFAULT["cutoff"])
    return spk.transform.SkinNeighborList(full, cutoff_skin=PAINN_SKIN)


def painn_calculator(model_file: Path, dtype: str) -> Any:
    """SchNetPack's own ASE calculator for the model in ``model_file``: eV and Å, CPU, ``dtype``."""
    spk = import_schnetpack()
    return spk.interfaces.SpkCalculator(
        model_file=str(model_file),
        neighbor_list=painn_neighbour_list(),
        energy_key="energy",
        force_key="forces",
        energy_unit="eV",
        position_unit="Angstrom",
        device="cpu",
        dtype=getattr(torch, dtype),
    )


def painn_description() -> str:
    hp = PAINN_DEFAULT
    return (
        f"SchNetPack PaiNN (default size): n_atom_basis {hp['n_atom_basis']}, "
        f"{hp['n_interactions']} interactions, {hp['n_rbf']} Gaussian RBF, cosine cutoff "
        f"{hp['cutoff']} Å, unshared; SpkCalculator with SkinNeighborList(MatScipyNeighborList, "
        f"skin {PAINN_SKIN} Å)"
    )


# --- the peers --------------------------------------------------------------------------------


class Peer(typing.NamedTuple):
    package: str  # distribution name whose version is reported
    build: Callable[[str], Any]  # dtype -> random-weight model
    calculator: Callable[[Path, str], Any]  # (saved model file, dtype) -> ASE calculator
    description: Callable[[], str]


PEERS: dict[str, Peer] = {
    "mace": Peer("mace-torch", build_mace, mace_calculator, mace_description),
    "schnetpack-painn": Peer("schnetpack", build_painn, painn_calculator, painn_description),
}


def time_peer(name: str, structure: Path, dtype: str, repeats: int) -> dict[str, Any]:
    """Build, save, load through the peer's calculator and time ``name``; the JSON record."""
    peer = PEERS[name]
    atoms = read_structure(structure)
    model = peer.build(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / f"{name}.pt"
        torch.save(model, model_file)
        del model
        calculator = peer.calculator(model_file, dtype)
    ms = time_forces(atoms, calculator, repeats)
    return {
        "peer": name,
        "ms": ms,
        "atoms": len(atoms),
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "versions": {peer.package: version(peer.package), "torch": version("torch")},
        "description": peer.description(),
    }


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True, choices=sorted(PEERS))
    parser.add_argument("--structure", required=True, type=Path, help="extxyz/xyz file (Å)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls after 3 warm-up calls")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not args.structure.is_file():
        parser.error(f"--structure {args.structure} is not a file")
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
    try:
        record = time_peer(args.peer, args.structure, args.dtype, args.repeats)
    except Exception as error:  # report any failure of a peer as one clear line, then the trace
        traceback.print_exc()
        print(f"time_peer.py: timing {args.peer} on {args.structure} failed: {error!r}", file=sys.stderr)
        return 1
    out.write(json.dumps(record) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
