#!/usr/bin/env bash
# Time to accuracy on a new molecule, rMD17 paracetamol with 50 and with 950 training frames
# (and salicylic acid with 50): eqff's PaiNN fine-tuned from painn-rmd17 and trained from
# scratch, and MACE and NequIP trained from scratch through their own command lines in their own
# virtual environments, each for 90 minutes on one torch thread, two runs at a time; then the
# test errors of the models they kept after 10, 30 and 90 minutes (eqff learning-curve), as a
# table and a plot.
#
# Usage: EQFF_DATA=/path/to/data bash training/learning-curve.sh [OUTPUT]   (about 8 hours)
#
# A run that finished is not run again, so after an interruption the same command goes on with
# the runs still missing (an interrupted eqff run resumes from its checkpoint; an interrupted
# peer run starts again).
set -euo pipefail
cd "$(dirname "$0")/.."
output="${1:-docs/learning-curve}"
export OMP_NUM_THREADS=1

[ -x .peers-venv/bin/python ] || bash eqff/peers/create_venv.sh .peers-venv            # MACE
[ -x .nequip-venv/bin/python ] || bash eqff/peers/create_nequip_venv.sh .nequip-venv   # NequIP

# eqff train CONFIG NAME [OVERRIDES...]: skipped once the run has its 90-minute snapshot.
train() {
    local config="$1" name="$2"
    shift 2
    [ -f "runs/$name/snapshots/$name-90min.eqff" ] && return
    local resume=()
    [ -f "runs/$name/checkpoints/last.ckpt" ] && resume=(--resume)
    eqff train "$config" --set "name=$name" "$@" "${resume[@]}" --no-progress
}
# Fine-tuned from painn-rmd17, as the config says.
fine_tuned() { train "$1" "$(basename "$1" .yaml)"; }
# From scratch: PaiNN's own recipe (lr 5e-4, no warm-up) on the same frames, for the same time.
scratch() {
    train "$1" "$(basename "$1" .yaml)-scratch" --set model.initial_weights=null --set optimiser.lr=5.0e-4 \
        --set schedule.warmup_steps=0
}
# A peer from scratch with its own rMD17 recipe: runs/<peer>-<molecule>[-50].
peer() {
    local name
    name="$1-$(basename "$2" .yaml | sed 's/^painn-//')"
    [ -f "runs/$name/peer-learning-curve.json" ] && return
    local python=.nequip-venv/bin/python
    [ "$1" = mace ] && python=.peers-venv/bin/python
    eqff train-peer "$2" --peer "$1" --python "$python"
}

(
    fine_tuned training/painn-paracetamol-50.yaml
    fine_tuned training/painn-paracetamol.yaml
    peer mace training/painn-paracetamol-50.yaml
    peer mace training/painn-paracetamol.yaml
    fine_tuned training/painn-salicylic-50.yaml
) &
first=$!
(
    scratch training/painn-paracetamol-50.yaml
    scratch training/painn-paracetamol.yaml
    peer nequip training/painn-paracetamol-50.yaml
    peer nequip training/painn-paracetamol.yaml
    scratch training/painn-salicylic-50.yaml
) &
second=$!
wait "$first"
wait "$second"

eqff learning-curve --output "$output" \
    runs/painn-paracetamol-50 runs/painn-paracetamol-50-scratch runs/mace-paracetamol-50 runs/nequip-paracetamol-50 \
    runs/painn-paracetamol runs/painn-paracetamol-scratch runs/mace-paracetamol runs/nequip-paracetamol \
    runs/painn-salicylic-50 runs/painn-salicylic-50-scratch
