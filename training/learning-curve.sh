#!/usr/bin/env bash
# Time to accuracy on a new molecule: eqff's PaiNN fine-tuned from painn-rmd17 and trained from
# scratch, on rMD17 paracetamol (50 and 950 training frames) and salicylic acid (50), each for
# 90 minutes of training on one torch thread, two runs at a time; then the test errors of the
# models they kept after 10, 30 and 90 minutes (eqff learning-curve), as a table and a plot.
#
# Usage: EQFF_DATA=/path/to/data bash training/learning-curve.sh [OUTPUT]   (about 4.5 hours)
set -euo pipefail
cd "$(dirname "$0")/.."
output="${1:-docs/learning-curve}"

train() { OMP_NUM_THREADS=1 eqff train "$@" --no-progress; }
# From scratch: PaiNN's own recipe (lr 5e-4, no warm-up) on the same frames, for the same time.
scratch() { train "$1" --set "name=$2" --set model.initial_weights=null --set optimiser.lr=5.0e-4 --set schedule.warmup_steps=0; }

(
    train training/painn-paracetamol-50.yaml
    train training/painn-paracetamol.yaml
    train training/painn-salicylic-50.yaml
) &
fine_tuned=$!
(
    scratch training/painn-paracetamol-50.yaml painn-paracetamol-50-scratch
    scratch training/painn-paracetamol.yaml painn-paracetamol-scratch
    scratch training/painn-salicylic-50.yaml painn-salicylic-50-scratch
) &
from_scratch=$!
wait "$fine_tuned"
wait "$from_scratch"

eqff learning-curve --output "$output" \
    runs/painn-paracetamol-50 runs/painn-paracetamol-50-scratch \
    runs/painn-paracetamol runs/painn-paracetamol-scratch \
    runs/painn-salicylic-50 runs/painn-salicylic-50-scratch
