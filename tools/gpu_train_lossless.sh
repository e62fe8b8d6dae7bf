#!/usr/bin/env bash
# One prepared run for a short GPU lease: train the lossless RVAE (iREC, Flamich et al. 2020, sec. 4.1) for a fixed
# time with the GPU speed settings on, and pack into $OUT what a lease brings back (at most 8 files under 16 MiB):
# the EMA model and the resumable run, so that the next lease continues where this one stopped.
#
#   OUT=DIR IREC_DATA=DATA [PRESET=photos|cpu|paper] [INIT=lossless-cifar10 | RESUME=DIR] [TRAIN_S=480]
#   [BATCH=N] [LR=X] [STEPS=N] [BF16=1] [COMPILE=1] [DEVICE_DATA=1] [TF32=1] [WORK=/tmp/irec-lossless]
#   [PYTHON=python3] [IREC_GIT_COMMIT=SHA] tools/gpu_train_lossless.sh
#
# PRESET: a lossless preset of irec.settings by name (default photos), built by irec.training.runs.build with its
# own data. Start: from scratch; or INIT, a shipped name or a model.pt of the same architecture (lossless-cifar10
# is the `cpu` preset's), fine-tuned at the lr its preset's schedule ends on (lr * lr_gamma^milestones, no drops);
# or RESUME, a folder $OUT of an earlier call brought back (run-index.json + run-checkpoint.partNN): unpacked
# (transport.unpack_run, every sha256 checked) and continued with the settings it was started with, at the step it
# stopped at. A second call on the same warm machine continues $WORK/run without RESUME.
# BATCH / LR: the batch and its learning rate. With BATCH and no LR, the lr is scaled by sqrt(BATCH / the preset's
# batch) (the square-root rule for Adam-type optimizers, which the RVAE's Adamax is; linear scaling overshoots them
# at large batches); pass LR to override. STEPS: the run's total steps (default: the preset's; 1,000,000 with INIT,
# so that only TRAIN_S stops it).
# BF16, COMPILE, DEVICE_DATA, TF32 (1 or 0): irec.training.loop.GpuOptions, used on CUDA only; on the CPU all are
# off and the run computes what `irec train` computes. If the run fails with COMPILE or DEVICE_DATA on, it is
# resumed once from its last checkpoint without them for the time left.
# Steps per second are measured after each call's first 10 steps (so without compile time) and printed to
# $OUT/logs.tgz's train.log and here. Bring back $OUT: model.pt (the EMA weights, float), run-index.json and
# run-checkpoint.partNN (transport.pack_run: the resumable state), logs.tgz (train.log, TensorBoard events,
# config.json, data.txt, init.json, sha256s). The paper preset's checkpoint (450 MiB) does not fit: the script says
# so, brings back the logs, and leaves the run in $WORK/run for another call on the warm machine.
set -u
: "${OUT:?set OUT to the folder to bring back}" "${IREC_DATA:?set IREC_DATA to the training data}"
export IREC_DATA PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.." || exit 1
work=${WORK:-/tmp/irec-lossless}
run=$work/run
logs=$work/logs
mkdir -p "$run" "$logs" "$OUT"
log=$logs/train.log
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi: training on the CPU, GPU options off"; } | tee "$logs/device.txt"
"${PYTHON:-python3}" - "$run" <<'EOF' > "$log" 2>&1
import dataclasses, logging, math, os, sys, time, traceback
import torch
from irec.checkpoint import load
from irec.settings import TrainConfig
from irec.training.loop import GpuOptions, TrainingDivergedError, ResumeMismatchError, train
from irec.training.runs import _start_from, build
from irec.training.transport import read_index, unpack_run
from pathlib import Path

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
env = os.environ.get
run, preset_name = Path(sys.argv[1]), env("PRESET") or "photos"
budget, started = float(env("TRAIN_S") or 480), time.monotonic()
cuda = torch.cuda.is_available()
print("torch", torch.__version__, "device", torch.cuda.get_device_name(0) if cuda else "cpu", "preset", preset_name)
model, config, dataset, data = build("lossless", preset_name)
base_batch, base_lr = config.batch_size, config.lr
if env("RESUME"):
    if (run / "checkpoint.pt").is_file():
        sys.exit(f"{run} already holds a run; RESUME is for a fresh machine (leave it out to continue {run})")
    unpack_run(env("RESUME"), run)
    print("unpacked", env("RESUME"), "at step", read_index(env("RESUME"))["step"])
if (run / "checkpoint.pt").is_file():  # continue with the settings the run started with
    saved = load(run / "checkpoint.pt")
    config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
    print("resuming", run, "at step", saved["step"], "with its own settings; BATCH, LR and INIT are not used")
    del saved
else:
    if env("INIT"):
        data += "; " + _start_from(model, env("INIT"), run)
        config = dataclasses.replace(config, lr=config.lr * config.lr_gamma ** len(config.lr_milestones),
                                     lr_milestones=(), n_steps=1_000_000)
        base_lr = config.lr
    if env("BATCH"):
        config = dataclasses.replace(config, batch_size=int(env("BATCH")))
    lr = float(env("LR")) if env("LR") else base_lr * math.sqrt(config.batch_size / base_batch)
    config = dataclasses.replace(config, lr=lr)
    print(f"batch {config.batch_size}, lr {lr:.4g} (preset: batch {base_batch}, lr {base_lr:.4g};",
          "given)" if env("LR") else "square-root rule)")
if not (run / "data.txt").is_file():
    (run / "data.txt").write_text(data + "\n")
config = dataclasses.replace(config, progress=False, max_seconds=budget, device="cuda" if cuda else "cpu",
                             checkpoint_every=max(config.checkpoint_every, 2000) if cuda else config.checkpoint_every,
                             n_steps=int(env("STEPS") or config.n_steps))
on = lambda name: cuda and (env(name) or "1") == "1"
gpu = GpuOptions(autocast_bf16=on("BF16"), compile=on("COMPILE"), data_on_device=on("DEVICE_DATA"), tf32=on("TF32"))
print("gpu options", gpu, "train config", config)
try:
    result = train(model, None, dataset, config, run, gpu=gpu)
except (TrainingDivergedError, ResumeMismatchError, KeyboardInterrupt):
    raise
except Exception:
    if not (gpu.compile or gpu.data_on_device):
        raise
    traceback.print_exc()
    left = budget - (time.monotonic() - started)
    print(f"failed with {gpu}; resuming from the last checkpoint without compile and device data for {left:.0f} s")
    gpu = dataclasses.replace(gpu, compile=False, data_on_device=False)
    result = train(model, None, dataset, dataclasses.replace(config, max_seconds=max(left, 1.0)), run, gpu=gpu)
print("steps", result.step, "finished", result.finished, "metrics", result.metrics)
print("steps_per_s_after_warmup", result.steps_per_s)
EOF
status=$?
echo "training exit $status"
tail -4 "$log" | cut -c1-400
[[ $status -eq 0 ]] || { grep -iE "error|exception" "$log" | tail -5; }
for f in tensorboard config.json data.txt init.json; do [[ -e "$run/$f" ]] && cp -r "$run/$f" "$logs/"; done
limit=$((16 * 1024 * 1024))
packed=0
if [[ -f "$run/model.pt" && $(stat -c %s "$run/model.pt") -lt $limit ]]; then
  cp "$run/model.pt" "$OUT/model.pt"
else
  echo "FAIL: $run/model.pt is missing or not under 16 MiB; it stays on this machine"
fi
if "${PYTHON:-python3}" -c "
import sys
from irec.training.transport import pack_run
pack_run(sys.argv[1], sys.argv[2], max_files=6)  # + model.pt + logs.tgz = 8
" "$run" "$OUT" >> "$log" 2>&1; then
  packed=1
else
  echo "FAIL: the run could not be packed into 6 files (see train.log); it stays in $run on this machine"
  tail -1 "$log" | cut -c1-400
fi
(cd "$OUT" && sha256sum ./* > "$logs/sha256sums" 2>/dev/null)
tar czf "$OUT/logs.tgz" -C "$work" logs
ls -la "$OUT"
n=$(find "$OUT" -type f | wc -l)
big=$(find "$OUT" -type f -size +$((limit - 1))c)
if [[ $n -gt 8 || -n "$big" ]]; then
  echo "FAIL: $OUT holds $n files (at most 8 come back) or files not under 16 MiB: $big"
  exit 2
fi
[[ $status -eq 0 && $packed -eq 1 && -f "$OUT/model.pt" ]] || exit 1
echo "OK: $n files in $OUT, each under 16 MiB"
