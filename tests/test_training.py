"""irec train / irec ship: a smoke model trains, resumes, ships into the manifest and is found by name."""

from __future__ import annotations

import json

import pytest

from irec import zoo
from irec.__main__ import main
from irec.settings import TrainConfig
from tests.models import small_lossless


def test_a_smoke_lossless_model_trains_resumes_and_ships_under_its_name(tmp_path, shared_data, shipped, capsys):
    run = tmp_path / "run"
    assert main(["train", "lossless", str(run), "--preset", "smoke", "--steps", "2", "--threads", "1"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert main(["train", "lossless", str(run), "--preset", "smoke", "--steps", "3", "--threads", "1"]) == 0
    assert "finished at step 3" in capsys.readouterr().out  # resumed from step 2, not restarted
    assert main(["ship", str(run), "lossless-smoke", "--preset", "smoke", "--figures", '{"note": "untrained"}']) == 0
    (entry,) = json.loads((shipped / "manifest.json").read_text())["models"]
    assert (entry["name"], entry["kind"], entry["preset"], entry["steps"]) == ("lossless-smoke", "lossless", "smoke", 3)
    assert "cifar10" in entry["data"].lower() or "CIFAR" in entry["data"]
    _model, fingerprint, _ = zoo.resolve_model("lossless-smoke")
    assert fingerprint == entry["fingerprint"]


def test_a_smoke_lossy_model_trains_on_the_natural_photo_stand_in(tmp_path, shared_data):
    run = tmp_path / "run"
    assert main(["train", "lossy", str(run), "--preset", "smoke", "--steps", "2", "--threads", "1", "--limit", "3",
                 "--beta", "0.03"]) == 0
    assert "bsds500" in (run / "data.txt").read_text()
    assert (run / "model.pt").is_file()


def test_shipping_an_unfinished_run_is_a_clear_error(tmp_path, shipped):
    assert main(["ship", str(tmp_path / "nothing"), "x", "--preset", "cpu"]) == 2


def test_fine_tuning_starts_from_the_given_models_weights_and_records_where_they_came_from(tmp_path, shared_data):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    common = ["--preset", "smoke", "--threads", "1", "--limit", "3"]
    assert main(["train", "lossy", str(base), "--steps", "2", "--beta", "0.01", *common]) == 0
    assert main(["train", "lossy", str(tuned), "--steps", "0", "--beta", "0.05", "--init-from",
                 str(base / "model.pt"), *common]) == 0
    _, base_fingerprint, _ = zoo.resolve_model(base / "model.pt")
    model, tuned_fingerprint, _ = zoo.resolve_model(tuned / "model.pt")
    assert tuned_fingerprint == base_fingerprint  # zero fine-tuning steps: the base weights, unchanged
    assert model.config.beta == 0.05
    assert "fine-tuned from" in (tuned / "data.txt").read_text()
    origin = json.loads((tuned / "init.json").read_text())
    assert origin["steps"] == 2 and origin["fingerprint"] == base_fingerprint


def test_fine_tuning_from_a_model_of_another_kind_is_a_clear_error(tmp_path, shared_data, capsys):
    lossless = tmp_path / "lossless"
    assert main(["train", "lossless", str(lossless), "--preset", "smoke", "--steps", "1", "--threads", "1"]) == 0
    code = main(["train", "lossy", str(tmp_path / "tuned"), "--preset", "smoke", "--steps", "1", "--limit", "3",
                 "--init-from", str(lossless / "model.pt")])
    assert code == 2 and "cannot fine-tune a TwoLevelVAE" in capsys.readouterr().err


def test_a_lossy_run_trains_on_crops_and_batches_of_the_size_asked_for_and_records_them(tmp_path, shared_data):
    run = tmp_path / "run"
    assert main(["train", "lossy", str(run), "--preset", "smoke", "--steps", "1", "--threads", "1", "--limit", "3",
                 "--crop-size", "128", "--batch-size", "1"]) == 0
    assert "128x128 crops" in (run / "data.txt").read_text()
    assert json.loads((run / "config.json").read_text())["train"]["batch_size"] == 1


def test_a_crop_size_that_is_not_a_multiple_of_64_is_a_clear_error(tmp_path, shared_data, capsys):
    code = main(["train", "lossy", str(tmp_path / "run"), "--preset", "smoke", "--steps", "1", "--limit", "3",
                 "--crop-size", "100"])
    assert code == 2 and "multiple of 64, got 100" in capsys.readouterr().err


def test_a_crop_size_for_the_lossless_model_is_a_clear_error(tmp_path, shared_data, capsys):
    code = main(["train", "lossless", str(tmp_path / "run"), "--preset", "smoke", "--steps", "1", "--crop-size", "64"])
    assert code == 2 and "crop_size is for the lossy model" in capsys.readouterr().err


def test_two_runs_with_the_same_settings_train_the_same_model_and_another_seed_another(tmp_path, shared_data):
    from irec.checkpoint import load_model

    def fingerprint(name: str, *seed: str) -> str:
        assert main(["train", "lossless", str(tmp_path / name), "--preset", "smoke", "--steps", "2", "--threads", "1",
                     *seed]) == 0
        return load_model(tmp_path / name / "model.pt")[1]

    assert fingerprint("a") == fingerprint("b") != fingerprint("c", "--seed", "1")


def test_the_learning_rate_can_be_overridden_and_a_resumed_run_keeps_it(tmp_path, shared_data, capsys):
    run = tmp_path / "run"
    common = ["train", "lossless", str(run), "--preset", "smoke", "--threads", "1"]
    assert main([*common, "--steps", "1", "--lr", "2e-4"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 2e-4
    assert main([*common, "--steps", "2", "--lr", "2e-4"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert main([*common, "--steps", "3"]) != 0  # the preset's rate is not the run's: refused, not silently mixed
    assert "lr" in capsys.readouterr().err


def test_lr_scales_give_the_parameters_they_name_their_own_learning_rate():
    from irec.training.loop import _param_groups

    model = small_lossless(0, pixel_channels="conditioned")
    config = TrainConfig(lr=1e-4, lr_scales=(("x_coeff.", 30.0),))
    groups = _param_groups(model, config)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), pytest.approx(3e-3)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.x_coeff.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(_param_groups(model, TrainConfig(lr=1e-4))) == 1
    with pytest.raises(ValueError, match="lr_scales"):
        TrainConfig(lr_scales=(("x_coeff.", 0.0),))


def test_the_cpu_rate_preset_continues_the_shipped_cifar10_model_for_the_coded_rate(tmp_path, shared_data):
    run = tmp_path / "run"
    assert main(["train", "lossless", str(run), "--preset", "cpu-rate", "--init-from", "lossless-cifar10",
                 "--steps", "1", "--threads", "1"]) == 0
    _, shipped_fingerprint, _ = zoo.resolve_model("lossless-cifar10")
    assert json.loads((run / "init.json").read_text())["fingerprint"] == shipped_fingerprint
    model, _, _ = zoo.resolve_model(run / "model.pt")
    assert model.config.kl_weight == 1.2 and "CIFAR-10" in (run / "data.txt").read_text()
