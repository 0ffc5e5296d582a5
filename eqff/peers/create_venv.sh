#!/usr/bin/env bash
# Create the virtual environment in which eqff times its peer force fields.
#
# Usage: eqff/peers/create_venv.sh PATH
#
# Why a separate venv: mace-torch pins e3nn==0.4.4 and schnetpack pins sympy<=1.12, while eqff
# needs a newer e3nn, so the peers cannot be installed into eqff's own environment. They live in
# this venv instead, and `eqff report --peers` runs eqff/peers/time_peer.py with PATH/bin/python
# as a subprocess (that script never imports eqff), so the peers are timed on the same machine,
# in the same run, as eqff's own models.
#
# Torch is installed first, pinned to the CPU build that eqff is timed with, and is then held by
# a constraints file for every later install: an unpinned torch pulled in by mace-torch or
# schnetpack would be a multi-GB CUDA build and a different torch from eqff's.
#
# schnetpack 2.1.1 declares sympy<=1.12, which no torch 2.13 can satisfy (torch needs
# sympy>=1.13.3), so it is installed with --no-deps and its runtime requirements are installed
# explicitly, without the sympy cap (and without its development tools pre-commit and black).
# SchNetPack uses sympy only for Clebsch-Gordan coefficients in its SO3 layers, which PaiNN does
# not use; the import check at the end of this script covers the code path that is timed.
source "$(dirname "$0")/cpu_torch_venv.sh"

MACE_VERSION="0.3.16"
SCHNETPACK_VERSION="2.1.1"
"${pip[@]}" install -c "$constraints" "mace-torch==${MACE_VERSION}" ase
"${pip[@]}" install -c "$constraints" --no-deps "schnetpack==${SCHNETPACK_VERSION}"
# schnetpack 2.1.1's declared requirements, less sympy<=1.12, pre-commit and black.
"${pip[@]}" install -c "$constraints" \
    "numpy>=2.0.0" "ase>=3.21" h5py pyyaml "hydra-core>=1.1.0" "pytorch-lightning>=2.0.0" \
    torchmetrics "hydra-colorlog>=1.1.0" rich fasteners dirsync torch-ema "matscipy>=1.1.0" \
    "tensorboard>=2.17.1" "tensorboardX>=2.6.2.2" tqdm protobuf

# Fail here, not at timing time, if the pins did not hold or an import is broken. schnetpack
# 2.1.1 imports T_co from torch.utils.data.dataloader, which torch 2.13 no longer defines;
# time_peer.py restores it before importing schnetpack, and so does this check.
"$venv/bin/python" - <<PY
import typing
from importlib.metadata import version

import torch
import torch.utils.data.dataloader

torch.utils.data.dataloader.T_co = typing.TypeVar("T_co", covariant=True)

import ase
import mace.calculators
import schnetpack.interfaces

assert version("torch").split("+")[0] == "${TORCH_VERSION}", version("torch")
assert version("mace-torch") == "${MACE_VERSION}", version("mace-torch")
assert version("schnetpack") == "${SCHNETPACK_VERSION}", version("schnetpack")
print(f"peers venv ready: torch {torch.__version__}, mace-torch {version('mace-torch')}, "
      f"e3nn {version('e3nn')}, schnetpack {version('schnetpack')}, ase {ase.__version__}")
PY
