#!/usr/bin/env bash
# One prepared run for a short GPU lease: the cross-device check, then the `paper` lossy preset at one
# rate for a fixed time, then everything packed into $OUT in parts small enough to bring back.
#
#   OUT=DIR IREC_DATA=DATA [TRAIN_S=390] [BETA=0.01] [XDEV=FOLDER] [IREC_GIT_COMMIT=SHA] tools/gpu_session.sh
#
# DATA holds bsds500/ and sun_hays80/ (or clic/); FOLDER was written on another machine by
#   python -m irec.bench devices write --model lossy-mse-0.01 --dataset kodak --images 4 --out FOLDER
#   python -m irec.bench devices write --model lossless-cifar10 --dataset cifar10 --split test --images 8 --out FOLDER
# and needs those models in models/. The GPU machine needs torch, numba, constriction and pytorch-msssim (not
# imagecodecs). Bring back $OUT: bundle.tgz (logs, the check's rows, files written here for the reverse check,
# the run's TensorBoard events and config) and model.pt.partNN (cat them together; the sha256 is in the bundle).
# The check runs on the CPU beside the training. Measured on an H200 (2026-11-26): 39-43 steps/s at beta 0.01.
set -u
: "${OUT:?set OUT to the folder to bring back}" "${IREC_DATA:?set IREC_DATA to the training images}"
export IREC_DATA PYTHONUNBUFFERED=1
run=/tmp/irec-paper-mse-${BETA:-0.01}
bundle=/tmp/irec-bundle
mkdir -p "$bundle" "$OUT"
nvidia-smi -L
python3 -c "import torch, numba, numpy, constriction; print('torch', torch.__version__, 'numba', numba.__version__)"
if [[ -n "${XDEV:-}" ]]; then
  (
    python3 -m irec.bench devices check "$XDEV" --out "$bundle/devices-check.csv" --no-progress
    for model in "$XDEV"/*/; do
      name=$(basename "$model")
      [[ "$name" == *-decoded ]] && continue
      python3 -m irec.bench devices write --model "$name" --dataset "$model" --images 1000 \
        --out "$bundle/written-here" --no-progress
    done
  ) > "$bundle/devices.log" 2>&1 &
  check=$!
fi
python3 -m irec train lossy "$run" --preset paper --beta "${BETA:-0.01}" --max-seconds "${TRAIN_S:-390}" \
  > "$bundle/train.log" 2>&1
echo "train exit $?"
[[ -n "${XDEV:-}" ]] && { wait "$check"; echo "devices exit $?"; }
sha256sum "$run/model.pt" > "$bundle/model.sha256"
cp -r "$run/tensorboard" "$run/config.json" "$run/data.txt" "$bundle/" 2>/dev/null
split -b 15M -d "$run/model.pt" "$OUT/model.pt.part"
tar czf "$OUT/bundle.tgz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
tr '\r' '\n' < "$bundle/train.log" | tail -3
[[ -n "${XDEV:-}" ]] && grep -v "^\s*$" "$bundle/devices.log" | tail -8
ls -la "$OUT"
