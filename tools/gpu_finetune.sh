#!/usr/bin/env bash
# One prepared run for a short GPU lease (issue 5): continue training the `cpu` lossy preset at every MSE rate,
# all rates at once on the one GPU, for a fixed time, and pack the EMA models into $OUT to bring back.
#
#   OUT=DIR IREC_DATA=DATA [TRAIN_S=450] [BETAS="0.001 0.003 0.01 0.03 0.05"] [INIT=lossy-mse-0.01]
#   [IREC_GIT_COMMIT=SHA] tools/gpu_finetune.sh
#
# DATA holds bsds500/ and sun_hays80/. Every rate starts from INIT (a shipped name or a model.pt): the lease's
# 64 MiB working tree holds the training photos and one model, not five. The preset's fine-tuning settings apply
# (Adam, lr 3e-4 for 850 steps, then 9e-5; EMA weights), with as many steps as TRAIN_S allows and a checkpoint
# every 2,000 steps rather than 100 (a checkpoint every few seconds on a GPU). Bring back $OUT/mse-BETA.pt (the
# EMA weights, as `irec train` writes them) and $OUT/bundle.tgz (logs, TensorBoard events, config, data.txt,
# init.json, sha256s). Ship one with: mkdir RUN && cp mse-BETA.pt RUN/model.pt && (the bundle's files) && irec ship.
set -u
: "${OUT:?set OUT to the folder to bring back}" "${IREC_DATA:?set IREC_DATA to the training images}"
export IREC_DATA PYTHONUNBUFFERED=1
bundle=/tmp/irec-bundle
mkdir -p "$bundle" "$OUT"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi: training on $(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"
pids=()
for beta in ${BETAS:-0.001 0.003 0.01 0.03 0.05}; do
  run=/tmp/irec-runs/mse-$beta
  mkdir -p "$run"
  python3 - "$run" "$beta" "${INIT:-lossy-mse-0.01}" "${TRAIN_S:-450}" > "$bundle/train-mse-$beta.log" 2>&1 <<'EOF' &
import logging, sys
from irec.training import train_model
logging.basicConfig(level=logging.INFO)
run, beta, init, seconds = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
result = train_model("lossy", "cpu", run, beta=beta, init_from=init, n_steps=1_000_000, max_seconds=seconds,
                     checkpoint_every=2000, num_threads=2, progress=False)
print("steps", result.step, "metrics", result.metrics)
EOF
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "training exit $status"
for run in /tmp/irec-runs/mse-*; do
  name=$(basename "$run")
  [[ -f "$run/model.pt" ]] && cp "$run/model.pt" "$OUT/$name.pt"
  mkdir -p "$bundle/$name"
  cp -r "$run/tensorboard" "$run/config.json" "$run/data.txt" "$run/init.json" "$bundle/$name/" 2>/dev/null
done
(cd "$OUT" && sha256sum ./*.pt > "$bundle/sha256sums")
tar czf "$OUT/bundle.tgz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
for log in "$bundle"/train-*.log; do echo "$log: $(grep '^steps' "$log" | cut -c1-300)"; grep -i error "$log" | tail -3; done
ls -la "$OUT"
