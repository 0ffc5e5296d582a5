# Sourced by the peers' venv scripts (create_venv.sh, create_nequip_venv.sh): checks the usage,
# creates the virtual environment at the path given, installs the CPU build of torch that eqff
# runs with and holds it with a constraints file for every later install (an unpinned torch pulled
# in by a peer would be a multi-GB CUDA build, and a different torch from eqff's).
#
# Sets: venv (the path), TORCH_VERSION, pip (an array: the venv's pip) and constraints (a file
# for `pip install -c`, removed on exit).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PATH" >&2
    exit 2
fi
venv="$1"

TORCH_VERSION="2.13.0"

python3.11 -m venv "$venv"
pip=("$venv/bin/python" -m pip)

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${TORCH_VERSION}" > "$constraints"

"${pip[@]}" install --upgrade pip
"${pip[@]}" install "torch==${TORCH_VERSION}"
