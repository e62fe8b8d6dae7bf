"""The training loop shared by the lossless ResNet VAE and the lossy two-level VAE (method note, Section 5).

``train(model, loss_fn, dataset, config, run_dir)`` runs ``config.n_steps`` optimizer steps of
``loss_fn(x_uint8_batch) -> (loss, metrics)`` (by default ``model.training_loss``) with:

- atomic checkpoints (:mod:`irec.checkpoint`) every ``checkpoint_every`` steps and at the end, loadable with
  ``weights_only=True``; a rerun on the same ``run_dir`` resumes with nothing lost. Model, EMA, optimizer and
  learning-rate schedule are restored from the checkpoint; the data order, the per-item augmentation randomness
  and the model's sampling noise are pure functions of (seed, step, rank), so they need no saved state: 10 steps
  equal 5 steps + resume + 5 steps exactly;
- a weight EMA (``torch.optim.swa_utils.AveragedModel``), exported at the end with
  :func:`irec.checkpoint.save_model` as ``run_dir/model.pt``. Its decay warms up as in TensorFlow's
  ``ExponentialMovingAverage(num_updates=...)``, ``min(ema_decay, (1 + t) / (10 + t))`` after t updates, so the
  average forgets the weights it started from: without it, a 500-step fine-tune at decay 0.999 exported
  0.999^500 = 61% of the base model it started from (docs/models.md);
- TensorBoard scalars (``torch.utils.tensorboard``) and a ``tqdm.auto`` progress bar;
- ``run_dir/config.json`` with every parameter of the run and its provenance;
- DistributedDataParallel when started by ``torchrun --nproc_per_node=N`` (gloo on CPU, NCCL on GPU);
  ``batch_size`` is the global batch, split evenly over the processes;
- optional GPU speed settings (:class:`GpuOptions`: bf16 autocast, ``torch.compile``, the dataset held on the
  device, TF32), all off by default, so the CPU path computes exactly what it computed without them.

The step semantics follow the paper's recipes (Adamax with step drops for the RVAE, Adam for the lossy VAE), both
expressible by :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from irec import checkpoint
from irec.checkpoint import ResumeMismatchError
from irec.provenance import stamp
from irec.settings import TrainConfig
from irec.training.gpu import GpuOptions, device_images

logger = logging.getLogger(__name__)
__all__ = [
    "GpuOptions", "ResumeMismatchError", "StepBatchSampler", "TrainConfig", "TrainResult", "TrainingDivergedError",
    "train",
]
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
# Fields that must not change when a run is resumed (the others, e.g. n_steps, may).
_RESUME_FIELDS = ("batch_size", "optimizer", "lr", "lr_milestones", "lr_gamma", "ema_decay", "grad_clip", "seed")
WARMUP_STEPS = 10  # steps of a call left out of TrainResult.steps_per_s (torch.compile, cuDNN's autotuning)


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    step: int  # optimizer steps done in total (over all calls on this run_dir)
    finished: bool  # True when step == n_steps (False when max_seconds stopped the call early)
    metrics: dict[str, float]  # the last logged metrics, averaged over the logging window and the processes
    checkpoint: Path  # run_dir / "checkpoint.pt"
    model_path: Path | None  # run_dir / "model.pt" with the EMA weights (None if the model has no .config)
    fingerprint: str | None  # SHA-256 of the exported EMA weights
    steps_per_s: float | None = None  # this call's steps per second after its first WARMUP_STEPS steps (so
    # without torch.compile's compile time); None when the call made WARMUP_STEPS + 1 steps or fewer


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def _mix(*words: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class StepBatchSampler:
    """The items of every step: epoch e is a permutation seeded by (seed, e); each process takes its slice.

    Each item comes with its own seed from (seed, step, slot), so augmentations do not depend on workers or resumes.
    """

    def __init__(self, n_items: int, batch_size: int, rank: int, world_size: int, seed: int, start: int, stop: int):
        if n_items < batch_size:
            raise ValueError(f"the dataset has {n_items} items, fewer than one batch of {batch_size}")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.local = batch_size // world_size
        self.offset = rank * self.local
        self.start, self.stop = start, stop
        self._epoch, self._perm = -1, None

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def batch(self, step: int) -> list[tuple[int, int]]:
        epoch, k = divmod(step, self.n_items // self.batch_size)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(_mix(self.seed, 0, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n_items, generator=generator).tolist()
        lo = k * self.batch_size + self.offset
        seeds = np.random.SeedSequence([self.seed, 1, step]).generate_state(self.batch_size)
        return [(self._perm[lo + i], int(seeds[self.offset + i])) for i in range(self.local)]

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.batch(step)


class _SeededItems(Dataset):
    """Fetches item ``index`` with torch's global RNG seeded by the item's own seed (for random augmentations)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, item_seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(item_seed)
            return self.dataset[index]


class _LossModule(nn.Module):
    """Routes ``loss_fn`` through ``forward`` so that DistributedDataParallel sees (and syncs) every call."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, x: torch.Tensor):
        return self.loss_fn(x)


def _setup(config: TrainConfig) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether this call created the process group)."""
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    created = False
    if not (dist.is_available() and dist.is_initialized()) and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device("cpu")
    if use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed-size crops: let cuDNN pick its fastest convolutions once
    return rank, world, device, created


def _write_run_config(
    run_dir: Path, config: TrainConfig, model: nn.Module, dataset, world: int, step: int, gpu: GpuOptions
) -> None:
    """``run_dir/config.json``: every parameter of the run (training, model, data) and its provenance."""
    model_config = getattr(model, "config", None)
    payload = {
        "train": dataclasses.asdict(config),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "dataset": {"class": type(dataset).__name__, "size": len(dataset)},
        "world_size": world,
        "gpu_options": dataclasses.asdict(gpu),
        "resumed_from_step": step,
        "provenance": stamp(),
    }
    tmp = run_dir / ".config.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, run_dir / "config.json")


def train(
    model: nn.Module, loss_fn: LossFn | None, dataset: Dataset, config: TrainConfig, run_dir: str | os.PathLike,
    *, gpu: GpuOptions | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` (uint8 CHW tensors) with ``loss_fn`` (default ``model.training_loss``).

    Resumes from ``run_dir/checkpoint.pt`` when it exists. Under torchrun every process calls this with the same
    arguments; only rank 0 writes files, and only rank 0's result carries the fingerprint. ``gpu``: speed settings
    for a CUDA device (:class:`GpuOptions`; None: all off); a run may be resumed with other ones.
    """
    gpu = GpuOptions() if gpu is None else gpu
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    rank, world, device, created_group = _setup(config)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        gpu.check(device)
        if gpu.tf32:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return _train(
                model, loss_fn or model.training_loss, dataset, config, Path(run_dir), rank, world, device, gpu
            )
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        torch.set_num_threads(threads)
        if created_group and dist.is_initialized():
            dist.destroy_process_group()


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimizer's parameter groups: one per learning-rate factor of ``config.lr_scales`` (first prefix that
    matches a parameter's name; 1 for the rest), in a fixed order so that a resumed optimizer state fits."""
    groups: dict[float, list] = {}
    for name, param in model.named_parameters():
        factor = next((f for prefix, f in config.lr_scales if name.startswith(prefix)), 1.0)
        groups.setdefault(float(factor), []).append(param)
    return [{"params": params, "lr": config.lr * factor} for factor, params in sorted(groups.items())]


def _train(
    model, loss_fn, dataset, config: TrainConfig, run_dir: Path, rank: int, world: int, device, gpu: GpuOptions
) -> TrainResult:
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    model.to(device)
    optim_cls = torch.optim.Adamax if config.optimizer == "adamax" else torch.optim.Adam
    optimizer = optim_cls(_param_groups(model, config), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), config.lr_gamma)
    saved = None
    if ckpt_path.exists():
        saved = checkpoint.load_training_state(ckpt_path, config, model, _RESUME_FIELDS, map_location=device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    step = saved_step = int(saved["step"]) if saved else 0
    module = _LossModule(model, loss_fn)
    if world > 1:  # DDP broadcasts rank 0's weights, so the EMA below starts equal on every rank
        device_ids = [device.index] if device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    step_fn = torch.compile(module) if gpu.compile else module
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if gpu.autocast_bf16 else contextlib.nullcontext
    )
    ema = AveragedModel(model, multi_avg_fn=_ema_update(config.ema_decay, config.ema_warmup), use_buffers=True)
    if saved:
        ema.load_state_dict(saved["ema"])
    del saved

    def save(at_step: int) -> None:
        checkpoint.save_training_state(
            ckpt_path, step=at_step, model=model, ema=ema, optimizer=optimizer, scheduler=scheduler, config=config,
            metrics=last_metrics,
        )
        logger.info("checkpoint of step %d written to %s", at_step, ckpt_path)

    writer, last_metrics = None, {}
    if rank == 0:
        _write_run_config(run_dir, config, model, dataset, world, step, gpu)
        from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is slow to import

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step + 1 if step else None)
    sampler = StepBatchSampler(len(dataset), config.batch_size, rank, world, config.seed, step, config.n_steps)
    if gpu.data_on_device:  # the same items as the DataLoader's, indexed on the device
        images = device_images(dataset, device)
        batches = (
            images[torch.tensor([index for index, _ in sampler.batch(s)], device=device)]
            for s in range(step, config.n_steps)
        )
    else:
        loader = DataLoader(
            _SeededItems(dataset), batch_sampler=sampler, num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
        )
        batches = (x.to(device, non_blocking=True) for x in loader)
    sums, counts, window, started, skipped = {}, {}, 0, time.monotonic(), 0
    window_start, first_step, warm_start = started, step, None
    bar = tqdm(total=config.n_steps, initial=step, disable=not (config.progress and rank == 0), desc="train")
    model.train()
    try:
        for x in batches:
            if step == first_step + WARMUP_STEPS:
                warm_start = time.monotonic()
            # the model's noise is a function of (seed, rank, step), so a resumed run draws the same
            _seed_device(device, _mix(config.seed, 2, rank, step))
            with autocast():
                loss, metrics = step_fn(x)
            out_of_time = config.max_seconds is not None and time.monotonic() - started > config.max_seconds
            flags = torch.tensor([float(not torch.isfinite(loss)), float(out_of_time)], device=device)
            if world > 1:
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            optimizer.zero_grad(set_to_none=True)
            if not flags[0]:
                loss.backward()
                if config.grad_clip is not None:  # DDP has averaged the gradients: every process sees one norm
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    metrics = {**metrics, "grad_norm": float(grad_norm)}
                    flags[0] = float(not torch.isfinite(grad_norm))
            skipped = skipped + 1 if flags[0] else 0
            if skipped > config.skip_nonfinite:
                terms = ", ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
                raise TrainingDivergedError(
                    f"the loss or its gradient became non-finite at step {step} (loss {loss.item()}; {terms}"
                    f"{f'; {skipped} steps in a row' if skipped > 1 else ''}); lower lr or set grad_clip")
            if skipped:  # every process skips the same steps (the flags are reduced), so all log the same keys
                logger.warning("skipped step %d: its loss or gradient is not finite (%d in a row)", step, skipped)
                metrics = {"skipped": 1.0}  # the other metrics are means over the steps that updated
            else:
                optimizer.step()
                ema.update_parameters(model)
                metrics = {**metrics, "skipped": 0.0}
            scheduler.step()  # the schedule follows the steps, skipped or not
            step += 1
            bar.update(1)
            window += 1
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
            if step % config.log_every == 0 or step == config.n_steps:
                last_metrics = _reduce({k: v / counts[k] for k, v in sums.items()}, world, device)
                now = time.monotonic()
                last_metrics["steps_per_s"] = window / max(now - window_start, 1e-9)
                if writer is not None:
                    for key, value in last_metrics.items():
                        writer.add_scalar(f"train/{key}", value, step)
                    writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(last_metrics.items())[:2]})
                sums, counts, window, window_start = {}, {}, 0, now
            if step % config.checkpoint_every == 0 or step == config.n_steps or flags[1]:
                if rank == 0:
                    save(step)
                saved_step = step
            if flags[1]:
                break
        steps_per_s = None
        if warm_start is not None and step > first_step + WARMUP_STEPS:
            steps_per_s = (step - first_step - WARMUP_STEPS) / max(time.monotonic() - warm_start, 1e-9)
            logger.info("%.3g steps/s after the first %d steps of this call", steps_per_s, WARMUP_STEPS)
        if rank == 0 and saved_step != step:
            save(step)
        model_path, fingerprint = None, None
        if dataclasses.is_dataclass(getattr(model, "config", None)):
            model_path = run_dir / "model.pt"
            if rank == 0:
                extra = {"step": step, "weights": "ema", "metrics": last_metrics}
                fingerprint = checkpoint.save_model(ema.module, model_path, extra=extra)
        if world > 1:
            dist.barrier()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return TrainResult(step, step >= config.n_steps, last_metrics, ckpt_path, model_path, fingerprint, steps_per_s)


def ema_decay_at(decay: float, n_updates: int, warmup: bool) -> float:
    """The EMA's decay at update ``n_updates``: ``min(decay, (1 + n) / (10 + n))`` with warmup, else ``decay``."""
    return min(decay, (1.0 + n_updates) / (10.0 + n_updates)) if warmup else decay


def _ema_update(decay: float, warmup: bool) -> Callable:
    """A ``multi_avg_fn`` for :class:`AveragedModel`: one EMA step at the decay :func:`ema_decay_at` gives."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        d = ema_decay_at(decay, int(n_averaged), warmup)
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
        else:
            for p_ema, p in zip(ema_params, params, strict=True):
                p_ema.copy_(p_ema * d + p * (1.0 - d))

    return update


def _seed_device(device: torch.device, seed: int) -> None:
    """Seed torch's generator of ``device`` only (torch.manual_seed would also touch every CUDA device)."""
    if device.type == "cuda":
        torch.cuda.default_generators[device.index].manual_seed(seed)
    torch.default_generator.manual_seed(seed)


def _reduce(metrics: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    """Means over the processes (every process logs the same keys at the same steps)."""
    if world == 1 or not metrics:
        return dict(metrics)
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {k: float(v) / world for k, v in zip(keys, values.tolist())}
