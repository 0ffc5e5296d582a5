#!/usr/bin/env bash
# Create the virtual environment in which eqff trains NequIP for its time-to-accuracy comparison.
#
# Usage: eqff/peers/create_nequip_venv.sh PATH
#
# Why a venv of its own: nequip 0.19 needs e3nn>=0.6, while mace-torch (in the peers' venv made
# by create_venv.sh) pins e3nn==0.4.4, and eqff's own environment is not the peers' to change.
# `eqff learning-curve --peer nequip` runs eqff/peers/train_peer.py with PATH/bin/python; that
# script never imports eqff.
#
# Torch is installed first, pinned to the CPU build eqff is trained with, and is then held by a
# constraints file: an unpinned torch pulled in by nequip would be a multi-GB CUDA build.
source "$(dirname "$0")/cpu_torch_venv.sh"

NEQUIP_VERSION="0.19.1"
"${pip[@]}" install -c "$constraints" "nequip==${NEQUIP_VERSION}"

# Fail here, not at training time, if the pin did not hold or an import is broken.
"$venv/bin/python" - <<PY
from importlib.metadata import version

import ase
import torch
import nequip.ase

assert version("torch").split("+")[0] == "${TORCH_VERSION}", version("torch")
assert version("nequip") == "${NEQUIP_VERSION}", version("nequip")
print(f"nequip venv ready: torch {torch.__version__}, nequip {version('nequip')}, "
      f"e3nn {version('e3nn')}, lightning {version('lightning')}, ase {ase.__version__}")
PY
