#!/usr/bin/env bash
# Continue training a lossless model on the CPU, in the background and resumably, then say whether it beats the
# shipped model on held-out photos: the lossless `photos` preset fine-tunes the shipped CIFAR-10 RVAE (iREC, Flamich
# et al. 2020, Section 4.1; docs/irec-method.md Section 5) on crops of natural photos for the Kodak experiment.
#
#   RUN=DIR [PRESET=photos] [INIT=lossless-cifar10] [HOURS=1] [THREADS=2] [NAME=lossless-photos] [AGAINST=MODEL]
#   [NICE=10] [STEPS=N] [LR=X] [KL_WEIGHT=X] [LIMIT=N] [EVAL_IMAGES=16] [EVAL_DATASET=clic] [EVAL_SIDE=N]
#   [MEASURE=real] [SEED=N]
#   [PYTHON=python] tools/cpu_train.sh
#
# In the background:  nohup env RUN=runs/photos HOURS=6 tools/cpu_train.sh > runs/photos.log 2>&1 &
# The CIFAR-10 model:  RUN=runs/cifar-rate PRESET=cpu-rate THREADS=1 tools/cpu_train.sh  (NAME: lossless-cifar10)
#
# 1. Trains: `irec train lossless RUN --preset PRESET --init-from INIT --max-seconds HOURS*3600 --threads THREADS`
#    under `nice -n NICE`. The first call starts from INIT's weights (a shipped name or a model.pt; a shipped exact
#    model trains its float twin); a second call on the same RUN continues from RUN/checkpoint.pt where the first
#    stopped (an interrupted call loses at most the steps since its last checkpoint, every 200 steps for `photos`).
#    Every call ends by writing RUN/model.pt, the EMA weights. STEPS overrides the preset's number of steps (the
#    `photos` preset's 100,000 is a horizon: HOURS is what stops a call); LR overrides the preset's learning rate
#    (kept for the run's life); KL_WEIGHT overrides the preset's weight of the KL in the loss (RVAEConfig.kl_weight,
#    kept for the run's life); LIMIT trains on a seeded subset of that many photos per source (smoke runs). The
#    `photos` preset measured 1.0 s per step on one busy thread of the 2-core development machine (irec.settings),
#    so an hour is about 3,500 steps.
# 2. Compares: `python -m irec.training.heldout RUN/model.pt --against AGAINST --measure MEASURE` prints, for both
#    models on EVAL_IMAGES held-out images of EVAL_DATASET, the real files' bits per subpixel (MEASURE=real, the
#    default, which decides) and the honest -ELBO (MEASURE=elbo decides by it); its output is also kept in
#    RUN/heldout.txt. A photos preset is compared on tiles of 256 px (EVAL_SIDE) of the two CLIC validation images
#    (EVAL_DATASET=clic, the default: a source no photos preset trains on, with full-resolution chroma as Kodak's;
#    about 25 s per tile and model) or on centre crops of BSDS500 val (EVAL_DATASET=bsds500, EVAL_SIDE 128 by
#    default), which the photos presets never train on; Kodak, the test set, is not looked at. A CIFAR-10 preset
#    (cpu-rate) is compared on EVAL_IMAGES CIFAR-10 test images that the results table does not code
#    (`--dataset cifar10`; EVAL_DATASET and EVAL_SIDE do not apply). AGAINST defaults to NAME when a model of that
#    name is shipped, else lossless-cifar10.
#    The shipped lossless-photos is continued with PRESET=photos-2x INIT=lossless-photos (docs/models.md).
# 3. If the candidate is better (strictly lower), prints the `irec ship RUN NAME --preset PRESET --figures ...`
#    command to run; it does not ship by itself. Otherwise it says so: train longer (run it again) or leave it.
#
# Exit status: 0 when the comparison ran (better or not), non-zero when training or the comparison failed.
set -euo pipefail
: "${RUN:?set RUN to the run folder (created on the first call, continued on the next)}"
PRESET=${PRESET:-photos}
INIT=${INIT:-lossless-cifar10}
HOURS=${HOURS:-1}
THREADS=${THREADS:-2}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[[ -x "$py" ]] || py=python3
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
seconds=$(awk -v h="$HOURS" 'BEGIN { printf "%.0f", h * 3600 }')
extra=()
[[ -n "${STEPS:-}" ]] && extra+=(--steps "$STEPS")
[[ -n "${LIMIT:-}" ]] && extra+=(--limit "$LIMIT")
[[ -n "${LR:-}" ]] && extra+=(--lr "$LR")
[[ -n "${KL_WEIGHT:-}" ]] && extra+=(--kl-weight "$KL_WEIGHT")
[[ -n "${SEED:-}" ]] && extra+=(--seed "$SEED")
kind=$("$py" -c 'import sys; from irec.settings import lossless_preset
print("photos" if lossless_preset(sys.argv[1]).photos else "cifar10")' "$PRESET")  # fails on an unknown preset
if [[ $kind == photos ]]; then
  NAME=${NAME:-lossless-photos}; heldout=(--dataset "${EVAL_DATASET:-clic}")
  [[ -n "${EVAL_SIDE:-}" ]] && heldout+=(--side "$EVAL_SIDE")
else
  NAME=${NAME:-lossless-cifar10}; heldout=(--dataset cifar10)
fi

mkdir -p "$RUN"
[[ -f "$RUN/checkpoint.pt" ]] && echo "continuing $RUN from its checkpoint" || echo "starting $RUN from $INIT"
echo "training lossless/$PRESET for at most $seconds s on $THREADS thread(s), nice ${NICE:-10}"
nice -n "${NICE:-10}" "$py" -m irec train lossless "$RUN" --preset "$PRESET" --init-from "$INIT" \
  --max-seconds "$seconds" --threads "$THREADS" "${extra[@]}"

against=${AGAINST:-$("$py" -c '
import sys
from irec.zoo import list_models
shipped = {m["name"] for m in list_models() if m["source"] == "shipped"}
print(sys.argv[1] if sys.argv[1] in shipped else "lossless-cifar10")' "$NAME")}
status=0
nice -n "${NICE:-10}" "$py" -m irec.training.heldout "$RUN/model.pt" --against "$against" --threads "$THREADS" \
  --images "${EVAL_IMAGES:-16}" "${heldout[@]}" --measure "${MEASURE:-real}" > "$RUN/heldout.txt" \
  || status=$?
cat "$RUN/heldout.txt"
case $status in
  0)
    figures=$("$py" -c '
import json, sys
print(json.dumps(json.loads(open(sys.argv[1]).read().splitlines()[-1])["figures"]))' "$RUN/heldout.txt")
    echo "the candidate is better than $against on the held-out images; to ship it as $NAME, run:"
    quoted=${figures//\'/\'\\\'\'}  # the JSON in single quotes, any ' in it as '\''
    printf "  irec ship %q %q --preset %q --figures '%s'\n" "$RUN" "$NAME" "$PRESET" "$quoted"
    ;;
  3) echo "not shipping: $RUN/model.pt is not better than $against on the held-out images" \
       "(run again to train longer)" ;;
  *) echo "the held-out comparison failed (exit $status)" >&2; exit "$status" ;;
esac
