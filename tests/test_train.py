"""Tests of the shared training loop and checkpoints: exact resume, EMA, schedule, config, DDP on gloo, fingerprints."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from irec import checkpoint
from irec.data import ImageArrayDataset
from irec.models.rvae import RVAE
from irec.settings import TrainConfig
from irec.settings import lossless_preset as preset
from irec.training.loop import (
    ResumeMismatchError, StepBatchSampler, TrainingDivergedError, ema_decay_at, train,
)
from tests.models import small_lossless

SMOKE = preset("smoke")
CONFIG = dataclasses.replace(SMOKE.train, n_steps=10, checkpoint_every=5, log_every=2, lr_milestones=(4, 7))


def _dataset(n: int = 24, size: int = 8) -> ImageArrayDataset:
    return ImageArrayDataset(np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _assert_same_state(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_state(x, y)
    else:
        assert a == b


def _trainable_state(ckpt: dict) -> dict:
    return {k: ckpt[k] for k in ("step", "model", "ema", "optimizer", "scheduler")}


def test_training_interrupted_and_resumed_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path):
    dataset = _dataset()
    full = train(small_lossless(), None, dataset, CONFIG, tmp_path / "full")

    model, calls = small_lossless(), [0]

    def interrupted_loss(x):
        calls[0] += 1
        if calls[0] == 7:  # during step 7, after the checkpoint of step 5
            raise KeyboardInterrupt
        return model.training_loss(x)

    with pytest.raises(KeyboardInterrupt):
        train(model, interrupted_loss, dataset, CONFIG, tmp_path / "resumed")
    assert checkpoint.load(tmp_path / "resumed" / "checkpoint.pt")["step"] == 5
    other_init = small_lossless(seed=99)  # all state is loaded from the checkpoint
    resumed = train(other_init, None, dataset, CONFIG, tmp_path / "resumed")

    assert full.step == resumed.step == 10 and full.finished and resumed.finished
    _assert_same_state(
        _trainable_state(checkpoint.load(full.checkpoint)), _trainable_state(checkpoint.load(resumed.checkpoint))
    )
    assert full.fingerprint == resumed.fingerprint


def test_checkpoints_load_with_weights_only_and_hold_the_schedule_ema_and_config(tmp_path):
    result = train(small_lossless(), None, _dataset(), CONFIG, tmp_path)
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["step"] == 10 and saved["config"]["lr_milestones"] == (4, 7)
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(CONFIG.lr * CONFIG.lr_gamma**2)
    assert saved["ema"]["n_averaged"].item() == 10
    assert set(saved["metrics"]) >= {"loss_bpd", "elbo_bpd", "nll_bpd", "kl_bpd"}
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_the_run_dir_records_every_parameter_and_tensorboard_scalars(tmp_path):
    train(small_lossless(), None, _dataset(), CONFIG, tmp_path)
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["train"] == json.loads(json.dumps(dataclasses.asdict(CONFIG)))
    assert recorded["model"] == dataclasses.asdict(SMOKE.model)
    assert recorded["model_class"] == "irec.models.rvae.RVAE" and recorded["world_size"] == 1
    assert {"git_commit", "device", "timestamp"} <= set(recorded["provenance"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss_bpd")]
    assert steps == [2, 4, 6, 8, 10] and "train/lr" in events.Tags()["scalars"]


def test_the_ema_follows_the_weights_at_its_decay(tmp_path):
    result = train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, ema_decay=0.0), tmp_path / "zero")
    saved = checkpoint.load(result.checkpoint)
    for name, value in saved["model"].items():
        assert torch.allclose(saved["ema"][f"module.{name}"], value)
    result = train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, ema_decay=0.9), tmp_path / "slow")
    saved = checkpoint.load(result.checkpoint)
    assert not torch.allclose(saved["ema"]["module.x_enc.bias"], saved["model"]["x_enc.bias"])


def test_the_ema_decay_warms_up_to_its_configured_value():
    assert ema_decay_at(0.999, 1, warmup=True) == pytest.approx(2 / 11)
    assert ema_decay_at(0.999, 500, warmup=True) == pytest.approx(501 / 510)
    assert ema_decay_at(0.999, 100_000, warmup=True) == 0.999
    assert ema_decay_at(0.999, 1, warmup=False) == 0.999


def _distance(a: dict, b: dict) -> float:
    return sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in b)


@pytest.mark.parametrize("warmup", [True, False])
def test_a_warmed_up_ema_forgets_the_weights_a_fine_tune_starts_from(tmp_path, warmup):
    # A fine-tune starts the EMA at the base weights; at a constant decay of 0.999 ten steps keep 99% of them.
    config = dataclasses.replace(CONFIG, ema_decay=0.999, ema_warmup=warmup, lr_milestones=(), lr=1e-2)
    model = small_lossless()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    saved = checkpoint.load(train(model, None, _dataset(), config, tmp_path).checkpoint)
    ema = {k.removeprefix("module."): v for k, v in saved["ema"].items() if k != "n_averaged"}
    to_start, to_weights = _distance(ema, start), _distance(ema, saved["model"])
    assert (to_weights < to_start) == warmup


def test_the_exported_model_holds_the_ema_weights_and_reloads_with_its_fingerprint(tmp_path):
    result = train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, ema_decay=0.5), tmp_path)
    model, fingerprint = checkpoint.load_model(result.model_path)
    assert isinstance(model, RVAE) and model.config == SMOKE.model and fingerprint == result.fingerprint
    ema_state = checkpoint.load(result.checkpoint)["ema"]
    ema = {k.removeprefix("module."): v for k, v in ema_state.items() if k != "n_averaged"}
    _assert_same_state(model.state_dict(), ema)
    assert checkpoint.weights_fingerprint(model.state_dict()) == fingerprint


def test_a_saved_model_with_altered_weights_fails_its_fingerprint_check(tmp_path):
    model = small_lossless()
    fingerprint = checkpoint.save_model(model, tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    saved["state_dict"]["h_top"][0] += 1e-6
    assert checkpoint.weights_fingerprint(saved["state_dict"]) != fingerprint
    torch.save(saved, tmp_path / "altered.pt")
    with pytest.raises(checkpoint.CheckpointError, match="fingerprint"):
        checkpoint.load_model(tmp_path / "altered.pt")
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load_model(tmp_path / "missing.pt")


def test_each_epoch_visits_every_item_once_and_processes_split_the_global_batch():
    single = StepBatchSampler(24, 8, rank=0, world_size=1, seed=3, start=0, stop=6)
    batches = [[i for i, _ in batch] for batch in single]
    assert sorted(sum(batches[:3], [])) == list(range(24)) and sorted(sum(batches[3:], [])) == list(range(24))
    assert batches[:3] != batches[3:]  # a new permutation per epoch
    halves = [StepBatchSampler(24, 8, rank=r, world_size=2, seed=3, start=0, stop=6) for r in (0, 1)]
    for step in range(6):
        assert halves[0].batch(step) + halves[1].batch(step) == single.batch(step)


def test_resuming_with_a_different_batch_size_raises_a_clear_error(tmp_path):
    train(small_lossless(), None, _dataset(), CONFIG, tmp_path)
    with pytest.raises(ResumeMismatchError, match="batch_size"):
        train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, batch_size=4, n_steps=12), tmp_path)


def test_a_time_budget_stops_early_with_a_checkpoint_and_a_rerun_finishes(tmp_path):
    result = train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, max_seconds=0.0), tmp_path)
    assert (result.step, result.finished) == (1, False)
    assert checkpoint.load(result.checkpoint)["step"] == 1
    assert train(small_lossless(), None, _dataset(), CONFIG, tmp_path).step == 10


def test_a_non_finite_loss_raises_a_clear_error_naming_the_step_and_the_terms(tmp_path):
    model = small_lossless()

    def bad_loss(x):
        loss, metrics = model.training_loss(x)
        return loss * float("nan"), {**metrics, "kl_bpd": torch.tensor(float("inf"))}

    with pytest.raises(TrainingDivergedError, match=r"step 0 \(.*kl_bpd=inf"):
        train(model, bad_loss, _dataset(), CONFIG, tmp_path)


def _nan_at(model, steps: set[int]):
    """The model's loss, made NaN at the given calls (counted from 0)."""
    calls = iter(range(10**6))

    def loss_fn(x):
        loss, metrics = model.training_loss(x)
        return (loss * float("nan"), metrics) if next(calls) in steps else (loss, metrics)
    return loss_fn


def test_a_step_with_a_non_finite_loss_is_skipped_without_an_update_when_skipping_is_allowed(tmp_path):
    config = dataclasses.replace(CONFIG, n_steps=4, skip_nonfinite=2, log_every=4)
    clean = small_lossless()
    train(clean, _nan_at(clean, set()), _dataset(), dataclasses.replace(config, n_steps=2), tmp_path / "clean")
    model = small_lossless()
    result = train(model, _nan_at(model, {2, 3}), _dataset(), config, tmp_path / "run")  # steps 2 and 3 skipped
    assert result.finished and result.step == 4 and result.metrics["skipped"] == 0.5
    _assert_same_state(model.state_dict(), clean.state_dict())  # two updates, then none
    assert checkpoint.load(result.checkpoint)["scheduler"]["last_epoch"] == 4  # the schedule follows the steps


def test_more_non_finite_steps_in_a_row_than_allowed_raise_and_say_how_many(tmp_path):
    model = small_lossless()
    config = dataclasses.replace(CONFIG, skip_nonfinite=2)
    with pytest.raises(TrainingDivergedError, match="at step 5 .*3 steps in a row"):
        train(model, _nan_at(model, {1, 3, 4, 5}), _dataset(), config, tmp_path)


def test_a_non_finite_gradient_of_a_finite_loss_raises_before_it_reaches_the_weights(tmp_path):
    model = small_lossless()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(model.parameters())

    def nan_gradient(x):
        loss, metrics = model.training_loss(x)
        return loss + torch.sqrt(first.flatten()[0] * 0.0), metrics  # value + 0, gradient inf * 0 = NaN

    config = dataclasses.replace(CONFIG, grad_clip=20.0)
    with pytest.raises(TrainingDivergedError, match=r"step 0 \(.*grad_norm=nan"):
        train(model, nan_gradient, _dataset(), config, tmp_path)
    _assert_same_state(model.state_dict(), before)


def _ddp_worker(rank: int, world_size: int, port: int, run_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    os.environ["LOCAL_RANK"] = str(rank)
    model = small_lossless(seed=rank)  # different initial weights: DDP must broadcast rank 0's
    train(model, None, _dataset(), dataclasses.replace(CONFIG, device="cpu", num_threads=1), run_dir)
    torch.save(model.state_dict(), os.path.join(run_dir, f"rank{rank}.pt"))


def test_two_gloo_processes_train_in_lockstep_like_torchrun(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    _assert_same_state(rank0, rank1)
    saved = checkpoint.load(tmp_path / "checkpoint.pt")
    assert saved["step"] == 10
    _assert_same_state(saved["model"], rank0)
    assert json.loads((tmp_path / "config.json").read_text())["world_size"] == 2
    assert not torch.equal(rank0["x_enc.bias"], small_lossless(seed=0).state_dict()["x_enc.bias"])  # it did train


def test_invalid_train_configs_raise_a_clear_error():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="lr_milestones"):
        TrainConfig(lr_milestones=(5, 3))
    with pytest.raises(ValueError, match="fewer than one batch"):
        StepBatchSampler(4, 8, 0, 1, 0, 0, 1)
