"""The lossless photos preset: natural-photo crops without Kodak or the held-out BSDS500 val, fine-tuning from a
lossless checkpoint, the held-out -ELBO that decides shipping, and tools/cpu_train.sh end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from irec.data import load_images
from irec.settings import LOSSLESS_PRESETS, lossless_preset
from irec.training.heldout import compare, heldout_images, negative_elbo_bpd, real_bpd
from irec.training.runs import build, train_model
from irec.zoo import list_models, resolve_model
from tests.models import save_small, small_lossless

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def smoke_photos(monkeypatch) -> str:
    """A test-only lossless preset: the photos preset's data path with the smoke architecture, 16-px crops and
    batches of 2 (the photos preset's own cpu architecture takes a second a step); its name."""
    smoke = lossless_preset("smoke")
    preset = dataclasses.replace(
        lossless_preset("photos"), name="smoke-photos", model=smoke.model, crop_size=16,
        train=dataclasses.replace(smoke.train, batch_size=2, checkpoint_every=2, log_every=1),
    )
    monkeypatch.setitem(LOSSLESS_PRESETS, "smoke-photos", preset)
    return "smoke-photos"


def test_the_photos_preset_has_the_cpu_architecture_and_the_asked_for_training_settings():
    photos, cpu = lossless_preset("photos"), lossless_preset("cpu")
    assert photos.model == cpu.model  # so it fine-tunes from the shipped lossless-cifar10
    t = photos.train
    assert (photos.crop_size, t.batch_size, t.optimizer, t.grad_clip, t.num_threads, t.checkpoint_every) == (
        64, 8, "adamax", cpu.train.grad_clip, None, 200)
    assert t.max_seconds is not None and t.ema_decay > 0 and t.lr < cpu.train.lr
    assert "bsds500/val is held out" in photos.dataset and "s per step" in photos.note


def test_the_photos_preset_builds_64_px_uint8_crops_of_bsds500_train_test_and_sun_hays80_without_kodak_or_val(
        shared_data):
    model, config, dataset, data = build("lossless", "photos", finetune=True)
    crop = dataset[0]
    assert crop.dtype == torch.uint8 and tuple(crop.shape) == (3, 64, 64)
    assert {tuple(dataset[i].shape) for i in range(0, len(dataset), len(dataset) // 7)} == {(3, 64, 64)}
    folders = {source.rsplit("/", 1)[0] for source in dataset.sources}
    assert folders == {"bsds500/train", "bsds500/test", "sun_hays80"}
    assert len(dataset.sources) == 200 + 200 + 80
    names = {source.rsplit("/", 1)[1] for source in dataset.sources}
    val = {name for name, _ in load_images("bsds500", split="val")}
    kodak = {name for name, _ in load_images("kodak")}
    assert len(val) == 100 and not names & val and not names & kodak
    assert "bsds500 (train, test)" in data and "val held out" in data and "64x64 crops" in data
    assert "val," not in data.split(";")[0] and "kodak" not in data.split(";")[0].lower()
    assert config == lossless_preset("photos").train


def test_the_photos_2x_preset_area_downsamples_bsds500_by_two_as_sun_hays80_for_full_resolution_chroma(shared_data):
    from irec.data.torch_datasets import downsample_area

    _, _, dataset, data = build("lossless", "photos-2x", limit=2)
    bsds, sun = dataset.datasets
    first = load_images("bsds500", split="train", limit=2)[0][1]
    assert np.array_equal(bsds.images[0], downsample_area(first, 2))
    _, _, as_stored, _ = build("lossless", "photos-rate", limit=2)
    assert np.array_equal(as_stored.datasets[0].images[0], first)
    assert all(np.array_equal(a, b) for a, b in zip(sun.images, as_stored.datasets[1].images))
    assert "bsds500 (train, test), 2x area-downsampled + sun_hays80" in data
    assert lossless_preset("photos-2x").model == lossless_preset("photos-rate").model


def test_a_smoke_sized_model_fine_tunes_on_photo_crops_from_a_smoke_checkpoint_and_resumes(
        tmp_path, shared_data, smoke_photos):
    init = tmp_path / "init.pt"
    init_fingerprint = save_small("lossless", init)
    run = tmp_path / "run"
    zero = train_model("lossless", "smoke-photos", run, init_from=init, limit=2, n_steps=0)
    assert zero.fingerprint == init_fingerprint  # no steps: the weights it started from
    first = train_model("lossless", "smoke-photos", run, init_from=init, limit=2, n_steps=2)
    assert (first.step, first.finished) == (2, True) and first.fingerprint != init_fingerprint
    other = tmp_path / "other.pt"
    save_small("lossless", other, seed=1)
    resumed = train_model("lossless", "smoke-photos", run, init_from=other, limit=2, n_steps=3)
    assert resumed.step == 3  # continued from the checkpoint of step 2, which started from init, not other
    data = (run / "data.txt").read_text()
    assert "bsds500 (train, test) + sun_hays80" in data and "fine-tuned from" in data and "16x16 crops" in data
    assert json.loads((run / "init.json").read_text())["fingerprint"] == init_fingerprint
    assert json.loads((run / "config.json").read_text())["train"]["batch_size"] == 2


def test_the_crop_size_of_a_photos_preset_can_be_overridden_and_must_be_even(tmp_path, shared_data, smoke_photos):
    _, _, dataset, data = build("lossless", "smoke-photos", finetune=True, limit=2, crop_size=32)
    assert tuple(dataset[0].shape) == (3, 32, 32) and "32x32 crops" in data
    with pytest.raises(ValueError, match="even and at least 2"):
        build("lossless", "smoke-photos", limit=2, crop_size=31)


def test_the_kl_weight_of_a_lossless_preset_can_be_overridden_and_a_run_resumes_only_with_its_own(
        tmp_path, shared_data, smoke_photos):
    from irec.checkpoint import ResumeMismatchError

    model, *_ = build("lossless", "smoke-photos", limit=2, kl_weight=1.5)
    assert model.config.kl_weight == 1.5 and lossless_preset("smoke-photos").model.kl_weight == 1.0
    init = tmp_path / "init.pt"
    save_small("lossless", init)
    run = tmp_path / "run"
    train_model("lossless", "smoke-photos", run, init_from=init, limit=2, n_steps=1, kl_weight=1.5)
    assert json.loads((run / "config.json").read_text())["model"]["kl_weight"] == 1.5
    with pytest.raises(ResumeMismatchError, match="the model configuration"):
        train_model("lossless", "smoke-photos", run, init_from=init, limit=2, n_steps=2)
    with pytest.raises(ValueError, match="kl_weight is a setting of the lossless model"):
        build("lossy", "smoke", kl_weight=1.5)


def test_fine_tuning_a_lossless_preset_that_trains_on_cifar10_is_a_clear_error(tmp_path, shared_data):
    with pytest.raises(ValueError, match="fine-tune with --preset cpu-rate .* or a preset that trains on photos"):
        train_model("lossless", "smoke", tmp_path / "run", init_from=tmp_path / "whatever.pt", n_steps=1)


def test_the_held_out_images_are_deterministic_square_crops_of_bsds500_val(shared_data):
    images = heldout_images(3, 64, seed=1)
    assert images.dtype == np.uint8 and images.shape == (3, 64, 64, 3)
    assert np.array_equal(images, heldout_images(3, 64, seed=1))
    with pytest.raises(ValueError, match="even"):
        heldout_images(3, 63)


def test_the_clic_held_out_images_are_a_seeded_subset_of_the_tiles_of_the_two_clic_validation_images(shared_data):
    images = heldout_images(5, dataset="clic")
    assert images.dtype == np.uint8 and images.shape == (5, 256, 256, 3)
    assert np.array_equal(images, heldout_images(5, dataset="clic"))
    photos = [image for _, image in load_images("clic_sample")]
    every = heldout_images(None, 512, dataset="clic")  # 4 x 2 tiles of 2048 x 1363 and 2 x 1 of 1152 x 768
    assert len(every) == 10 and np.array_equal(every[0], photos[0][:512, :512])
    assert np.array_equal(every[9], photos[1][:512, 512:1024])
    assert all(any(np.array_equal(tile, other) for other in heldout_images(None, dataset="clic")) for tile in images)
    with pytest.raises(ValueError, match="between 1 and 10"):
        heldout_images(11, 512, dataset="clic")
    with pytest.raises(ValueError, match="even"):
        heldout_images(3, 255, dataset="clic")


def test_the_cifar10_held_out_images_are_test_images_that_the_table_never_codes(shared_data):
    from irec.data import load_images

    images = heldout_images(40, dataset="cifar10")
    assert images.shape == (40, 32, 32, 3) and np.array_equal(images, heldout_images(40, dataset="cifar10"))
    table = {image.tobytes() for _, image in load_images("cifar10", limit=1000)}  # the cpu profile's images
    assert not any(image.tobytes() in table for image in images)
    with pytest.raises(ValueError, match="taken whole"):
        heldout_images(4, 16, dataset="cifar10")
    with pytest.raises(ValueError, match="between 1 and 5000"):
        heldout_images(5001, dataset="cifar10")
    with pytest.raises(ValueError, match="held-out set must be one of"):
        heldout_images(4, dataset="kodak")


def test_compare_on_cifar10_names_its_figures_after_the_cifar10_held_out_set(tmp_path, shared_data,
                                                                           one_torch_thread):
    save_small("lossless", tmp_path / "model.pt")
    result = compare(tmp_path / "model.pt", "lossless-cifar10", n=3, measure="elbo", dataset="cifar10")
    assert result["better"] is False and result["side"] == 32 and result["dataset"] == "cifar10"
    assert result["figures"]["cifar10_heldout_negative_elbo_bpd"] == round(result["candidate_elbo_bpd"], 4)
    assert "--dataset cifar10" in result["figures"]["measured_by"]


def test_negative_elbo_bpd_is_deterministic_and_higher_for_an_untrained_model_than_for_the_shipped_one(
        shared_data, one_torch_thread):
    images = heldout_images(4, 64)
    shipped, _, _ = resolve_model("lossless-cifar10")  # exact: evaluated by its float twin
    trained = negative_elbo_bpd(shipped, images, batch=2)
    assert trained == negative_elbo_bpd(shipped, images, batch=2)  # the posterior sample is seeded
    assert isinstance(trained, float) and 2.0 < trained < 8.0
    untrained = negative_elbo_bpd(small_lossless(), images)
    assert untrained > trained + 1.0


@pytest.mark.parametrize("measure", ["real", "elbo"])
def test_compare_gives_both_figures_and_says_an_untrained_model_is_not_better(
        tmp_path, shared_data, one_torch_thread, measure):
    save_small("lossless", tmp_path / "model.pt")
    result = compare(tmp_path / "model.pt", "lossless-cifar10", n=2, side=32, measure=measure)
    assert result["better"] is False and result["candidate_bpd"] > result["shipped_bpd"]
    assert result["candidate_elbo_bpd"] > result["shipped_elbo_bpd"] and result["measure"] == measure
    assert result["figures"]["bsds500_val_negative_elbo_bpd"] == round(result["candidate_elbo_bpd"], 4)
    if measure == "real":  # real files cost more than the -ELBO (the coder's overhead)
        assert result["figures"]["bsds500_val_bpd"] == round(result["candidate_bpd"], 4)
        assert result["shipped_bpd"] > result["shipped_elbo_bpd"]
    else:
        assert result["candidate_bpd"] == result["candidate_elbo_bpd"] and "bsds500_val_bpd" not in result["figures"]
    assert result["images"] == 2 and result["side"] == 32 and f"--measure {measure}" in result["figures"]["measured_by"]


def test_real_bpd_counts_every_byte_and_refuses_a_file_that_does_not_decode(shared_data, one_torch_thread,
                                                                            monkeypatch):
    from irec.codecs.lossless import LosslessCodec

    images = heldout_images(2, 16)
    model, fingerprint, _ = resolve_model("lossless-cifar10")
    codec = LosslessCodec(model, fingerprint)
    expected = sum(8 * len(codec.compress(image)) for image in images) / images.size
    assert real_bpd(model, fingerprint, images) == expected
    monkeypatch.setattr(LosslessCodec, "decompress", lambda self, data: np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(RuntimeError, match="did not decode"):
        real_bpd(model, fingerprint, images)


def test_cpu_train_sh_trains_continues_and_compares_with_the_shipped_model_end_to_end(tmp_path, shared_data):
    # the real photos preset from the shipped lossless-cifar10, one step a call (about 1 s) on 2 photos per source
    run = tmp_path / "run"
    env = {**os.environ, "RUN": str(run), "LIMIT": "2", "THREADS": "1", "EVAL_IMAGES": "2", "EVAL_SIDE": "32",
           "PYTHON": sys.executable, "NICE": "0"}
    deadline = time.monotonic() + 60  # both calls together (about 30 s on the busy 2-core machine)

    def script(**more: str) -> str:
        done = subprocess.run([str(REPO / "tools" / "cpu_train.sh")], env={**env, **more}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = script(STEPS="1")
    assert "starting" in out and "from lossless-cifar10" in out and "finished at step 1" in out
    # compared with the shipped photo model once there is one, else with the model it fine-tunes
    against = "lossless-photos" if "lossless-photos" in {m["name"] for m in list_models()} else "lossless-cifar10"
    assert f"--against {against} --dataset clic " in (run / "heldout.txt").read_text()
    out = script(STEPS="2")
    assert "continuing" in out and "finished at step 2" in out
    verdict = out.split("the candidate is ")[-1]
    if f"is better than {against}" in out:
        assert "irec ship " in out and "lossless-photos --preset photos --figures '{\"clic_valid_tiles_" in out
    else:
        assert verdict.startswith("not better") and "not shipping" in out and "irec ship" not in out
    assert json.loads((run / "init.json").read_text())["path"] == "models/lossless-cifar10.pt"


def test_cpu_train_sh_continues_the_cifar10_model_and_compares_it_on_held_out_cifar10_images(tmp_path, shared_data):
    env = {**os.environ, "RUN": str(tmp_path / "run"), "PRESET": "cpu-rate", "STEPS": "1", "THREADS": "1",
           "EVAL_IMAGES": "2", "PYTHON": sys.executable, "NICE": "0"}
    done = subprocess.run([str(REPO / "tools" / "cpu_train.sh")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from lossless-cifar10" in done.stdout and "2 held-out CIFAR-10 test images" in done.stdout
    assert "--against lossless-cifar10 --dataset cifar10 --images 2 --side 32" in done.stdout
    assert "lossless-cifar10 --preset cpu-rate" in done.stdout or "not shipping" in done.stdout


def test_irec_train_takes_the_photos_presets_for_the_lossless_model_and_refuses_them_for_the_lossy_one(
        tmp_path, shared_data, smoke_photos, capsys):
    from irec.__main__ import main

    save_small("lossless", tmp_path / "init.pt")
    run = tmp_path / "run"
    assert main(["train", "lossless", str(run), "--preset", "smoke-photos", "--init-from", str(tmp_path / "init.pt"),
                 "--steps", "1", "--limit", "2", "--crop-size", "8", "--threads", "1"]) == 0
    assert "finished at step 1" in capsys.readouterr().out and "8x8 crops" in (run / "data.txt").read_text()
    assert main(["train", "lossy", str(tmp_path / "lossy"), "--preset", "photos", "--steps", "1"]) == 2
    assert "unknown lossy preset 'photos'" in capsys.readouterr().err
