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
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PATH" >&2
    exit 2
fi
venv="$1"

TORCH_VERSION="2.13.0"
NEQUIP_VERSION="0.19.1"

python3.11 -m venv "$venv"
pip=("$venv/bin/python" -m pip)

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${TORCH_VERSION}" > "$constraints"

"${pip[@]}" install --upgrade pip
"${pip[@]}" install "torch==${TORCH_VERSION}"
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
