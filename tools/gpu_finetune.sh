#!/usr/bin/env bash
# One prepared run for a short GPU lease: continue training the `cpu` lossy preset's models (every MSE
# rate, and the MS-SSIM one), all at once on the one GPU, for a fixed time, and pack the EMA models into $OUT to
# bring back.
#
#   OUT=DIR IREC_DATA=DATA [TRAIN_S=450] [RUNS="mse-0.001 mse-0.003 mse-0.01 mse-0.03 mse-0.05"]
#   [INIT=lossy-mse-0.01 | INIT_DIR=DIR] [CROP=256] [BATCH=8] [IREC_GIT_COMMIT=SHA] tools/gpu_finetune.sh
#
# RUNS: one training per entry, named DISTORTION-BETA with DISTORTION mse or msssim (msssim-0.08 trains on
# 255 * (1 - MS-SSIM)).
# CROP and BATCH: the training crops' side and the batch size. 128-px crops (the preset's) leave z2, at 1/64 of the
# image side, a 2x2 grid: models trained on them code z2 at ~0.043 bpp on whole Kodak images against 0.003 on the
# crops. Measured rates: at 128 x 8, 23-28 steps/s per run with five at once on an H200 (the first GPU ship); at
# 256 x 8, 16 steps/s per MSE run and 12 for MS-SSIM with six at once on an H100 (the second, 2026-11-26: ~10,500
# steps each in 2 calls, 495 s then a resume of 190 s).
#
# DATA holds bsds500/ and sun_hays80/. Every run starts from INIT (a shipped name or a model.pt), or, with
# INIT_DIR set, from INIT_DIR/lossy-NAME.pt. The lease's 64 MiB working tree holds the training photos and one
# model, not six: a first call (the tracked models travelling, the photos not) copies models/lossy-*.pt to the
# machine's /tmp, and a second (the tracked models moved aside, the photos carried) trains from there while the
# machine is still warm. The preset's fine-tuning settings apply (Adam, lr 3e-4 for 850 steps, then 9e-5; EMA
# weights), with as many steps as TRAIN_S allows and a checkpoint every 2,000 steps rather than 100 (a checkpoint
# every few seconds on a GPU); a second call with the same RUNS resumes every run from its checkpoint in /tmp.
# Bring back $OUT/NAME.pt (the EMA weights, as `irec train` writes them) and $OUT/bundle.tgz (logs, TensorBoard
# events, config, data.txt, init.json, sha256s). Ship one with: mkdir RUN && cp NAME.pt RUN/model.pt && (the
# bundle's files) && irec ship.
set -u
: "${OUT:?set OUT to the folder to bring back}" "${IREC_DATA:?set IREC_DATA to the training images}"
export IREC_DATA PYTHONUNBUFFERED=1
bundle=/tmp/irec-bundle
mkdir -p "$bundle" "$OUT"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'training on',
                                        'cuda' if torch.cuda.is_available() else 'cpu')"
pids=()
for name in ${RUNS:-mse-0.001 mse-0.003 mse-0.01 mse-0.03 mse-0.05}; do
  run=/tmp/irec-runs/$name
  init=${INIT:-lossy-mse-0.01}
  [[ -n "${INIT_DIR:-}" ]] && init=$INIT_DIR/lossy-$name.pt
  mkdir -p "$run"
  python3 - "$run" "$name" "$init" "${TRAIN_S:-450}" "${CROP:-256}" "${BATCH:-8}" \
    > "$bundle/train-$name.log" 2>&1 <<'EOF' &
import logging, sys
from irec.training.runs import train_model
logging.basicConfig(level=logging.INFO)
run, init, seconds = sys.argv[1], sys.argv[3], float(sys.argv[4])
distortion, beta = sys.argv[2].split("-")
distortion = {"mse": "mse", "msssim": "ms_ssim"}[distortion]
result = train_model("lossy", "cpu", run, beta=float(beta), distortion=distortion, init_from=init, n_steps=1_000_000,
                     max_seconds=seconds, crop_size=int(sys.argv[5]), batch_size=int(sys.argv[6]),
                     checkpoint_every=2000, num_threads=2, progress=False)
print("steps", result.step, "metrics", result.metrics)
EOF
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "training exit $status"
for run in /tmp/irec-runs/*; do
  name=$(basename "$run")
  [[ -f "$run/model.pt" ]] && cp "$run/model.pt" "$OUT/$name.pt"
  mkdir -p "$bundle/$name"
  cp -r "$run/tensorboard" "$run/config.json" "$run/data.txt" "$run/init.json" "$bundle/$name/" 2>/dev/null
done
(cd "$OUT" && sha256sum ./*.pt > "$bundle/sha256sums")
tar czf "$OUT/bundle.tgz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
for log in "$bundle"/train-*.log; do
  echo "$log: $(grep '^steps' "$log" | cut -c1-300)"
  grep -i error "$log" | tail -3
done
ls -la "$OUT"
