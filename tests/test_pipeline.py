"""The suite's model and coding steps: without a shipped model the cpu profile says so instead of failing, and an
interrupted coding step resumes image by image."""

from __future__ import annotations

import pandas as pd
import pytest

from irec import paths
from irec.evaluation import pipeline
from irec.evaluation import results
from irec.evaluation.results import results_path
from irec.settings import MS_SSIM_BETAS
from tests.models import save_small


def test_without_a_shipped_model_the_cpu_profile_names_what_to_do(shipped):
    choice = pipeline.lossless_model("cpu", train=False)
    assert choice.path is None and "--train" in choice.status and "lossless-cifar10" in choice.status
    assert pipeline.compress_lossless(choice, "cpu") is None
    (lossy,) = pipeline.lossy_models("cpu", train=False)
    assert lossy.path is None and pipeline.compress_lossy([lossy], "cpu") is None


def test_results_go_to_the_reference_csv_except_in_the_smoke_profile():
    assert results_path("lossless", "cifar10", "cpu") == paths.RESULTS / "lossless" / "cifar10.csv"
    assert results_path("lossy", "kodak", "smoke").name == "kodak-smoke.csv"


def test_the_cpu_profile_trains_four_mse_rates_and_an_ms_ssim_curve_of_three_under_their_shipped_names():
    rates = pipeline.LOSSY_RATES["cpu"]
    assert sum(d == "mse" for d, _ in rates) >= 4 and sum(d == "ms_ssim" for d, _ in rates) >= 3
    assert all(beta in MS_SSIM_BETAS for d, beta in rates if d == "ms_ssim")
    assert pipeline.lossy_name("mse", 0.01) == "lossy-mse-0.01"
    assert pipeline.lossy_name("ms_ssim", 0.08) == "lossy-msssim-0.08"


@pytest.fixture()
def coding_step(tmp_path, monkeypatch):
    """Results under tmp_path, a clean commit that the test sets, and a count of the images each codec codes."""
    from irec import provenance
    from irec.evaluation import lossless as lossless_eval
    from irec.evaluation import lossy as lossy_eval

    monkeypatch.setattr(results, "RESULTS", tmp_path / "results")  # where results_path puts every step's rows
    commit = {"sha": "a" * 40}
    monkeypatch.setattr(provenance, "git_commit", lambda: commit["sha"])
    coded = []
    for module in (lossy_eval, lossless_eval):  # both kinds' rows come from an evaluate_image
        original = module.evaluate_image

        def counted(codec, *args, _original=original, **kwargs):
            coded.append(codec.kind)
            return _original(codec, *args, **kwargs)

        monkeypatch.setattr(module, "evaluate_image", counted)
    return {"root": tmp_path, "commit": commit, "coded": coded}


def _drop_last_row(path):
    rows = pd.read_csv(path)
    rows.iloc[:-1].to_csv(path, index=False)  # as if the run had stopped before the last image
    return rows


def test_an_interrupted_lossy_coding_step_codes_only_the_images_it_had_not_finished_at_this_commit(coding_step):
    path = coding_step["root"] / "tiny-lossy.pt"
    save_small("lossy", path, seed=0)
    choice = pipeline.ModelChoice("lossy", "tiny", str(path), "a tiny model")
    out = results_path("lossy", "kodak", "smoke")
    coded = coding_step["coded"]
    first = pipeline.compress_lossy([choice], "smoke", final="best-q", workers=1)
    assert len(first) == pipeline.LOSSY_IMAGES["smoke"] == len(coded) == 2
    before = _drop_last_row(out)
    coded.clear()
    again = pipeline.compress_lossy([choice], "smoke", final="best-q", workers=1)
    assert len(coded) == 1 and sorted(again["image"]) == sorted(before["image"])
    after = pd.read_csv(out)
    assert len(after) == 2 and after["timestamp"].iloc[0] == before["timestamp"].iloc[0]
    assert after.drop(columns=["timestamp", "encode_s", "decode_s"]).equals(
        before.drop(columns=["timestamp", "encode_s", "decode_s"]))  # the same files, whichever run coded them
    for change in ({"refine_steps": 0}, {"low_rate": False}, {"resume": False}):  # other settings, or forced
        coded.clear()
        pipeline.compress_lossy([choice], "smoke", **{"final": "best-q", "workers": 1, **change})
        assert len(coded) == 2 and len(pd.read_csv(out)) == 2
    coding_step["commit"]["sha"] = "b" * 40  # other code: nothing kept
    coded.clear()
    pipeline.compress_lossy([choice], "smoke", final="best-q", workers=1)
    assert len(coded) == 2 and (pd.read_csv(out)["git_commit"] == "b" * 40).all()


def test_an_interrupted_lossless_coding_step_keeps_its_rows_of_this_commit_and_they_say_what_made_them(coding_step):
    path = coding_step["root"] / "tiny-lossless.pt"
    save_small("lossless", path, seed=0)
    choice = pipeline.ModelChoice("lossless", "tiny", str(path), "a tiny model")
    out = results_path("lossless", "cifar10", "smoke")
    coded = coding_step["coded"]
    pipeline.compress_lossless(choice, "smoke", workers=1)
    n_images = pipeline.LOSSLESS_IMAGES["smoke"][0]
    assert len(coded) == n_images
    rows = _drop_last_row(out)
    assert (rows["git_commit"] == "a" * 40).all() and rows["fingerprint"].nunique() == 1 and rows["exact"].all()
    assert rows["bit_exact"].all() and rows["lossless"].all() and (rows["model"] == "tiny").all()
    assert (rows["split"] == "test").all()  # the split load_images resolved, not an empty default
    coded.clear()
    again = pipeline.compress_lossless(choice, "smoke", workers=1)
    assert len(coded) == 1 and len(again) == n_images == len(pd.read_csv(out))
    with open(out, "a") as f:  # a run killed in the middle of writing a row, inside its quoted params
        f.write('cifar10,cut,irec,4.9,0.1,0.01,tiny,"{""n_beams"": 2')
    coded.clear()
    assert len(pipeline.compress_lossless(choice, "smoke", workers=1)) == n_images == len(coded)
    coding_step["commit"]["sha"] = "a" * 40 + "+dirty"  # uncommitted code: never resumed
    coded.clear()
    pipeline.compress_lossless(choice, "smoke", workers=1)
    assert len(coded) == n_images


def test_coding_with_another_encoder_keeps_the_rows_of_the_same_models_other_settings_and_a_new_model_replaces_them(
        coding_step):
    path = coding_step["root"] / "tiny-lossless.pt"
    save_small("lossless", path, seed=0)
    choice = pipeline.ModelChoice("lossless", "tiny", str(path), "a tiny model")
    out = results_path("lossless", "cifar10", "smoke")
    n_images = pipeline.LOSSLESS_IMAGES["smoke"][0]
    pipeline.compress_lossless(choice, "smoke", workers=1)
    coding_step["commit"]["sha"] = "b" * 40  # the refined rows come from other code: the default rows stay anyway
    refined = pipeline.compress_lossless(choice, "smoke", workers=1, refine_steps=2)
    assert (refined["refine_steps"] == 2).all() and refined["exact"].all() and len(refined) == n_images
    rows = pd.read_csv(out)
    assert sorted(rows["refine_steps"]) == [0] * n_images + [2] * n_images
    assert (rows[rows["refine_steps"] == 0]["git_commit"] == "a" * 40).all()
    stronger = pipeline.compress_lossless(choice, "smoke", workers=1, coder="paper-lossless")
    assert (stronger["n_beams"] == 20).all() and len(pd.read_csv(out)) == 3 * n_images  # a third setting's rows
    with pytest.raises(ValueError, match="unknown coder setting 'fast'"):
        pipeline.compress_lossless(choice, "smoke", workers=1, coder="fast")
    save_small("lossless", path, seed=1)  # another model under the same path: the old model's rows go
    coding_step["coded"].clear()
    pipeline.compress_lossless(choice, "smoke", workers=1)
    rows = pd.read_csv(out)
    assert len(coding_step["coded"]) == n_images == len(rows) and (rows["refine_steps"] == 0).all()


def test_without_a_shipped_photo_model_kodak_lossless_says_what_to_do_and_cifar_still_runs(shipped):
    choice = pipeline.lossless_photo_model("cpu")
    assert choice.path is None and "lossless-photos" in choice.status
    assert pipeline.compress_lossless(pipeline.lossless_model("cpu", False), "cpu", datasets=("kodak",)) is None


def test_kodak_is_coded_on_request_with_the_photo_model_into_its_own_results_file(coding_step, monkeypatch):
    path = coding_step["root"] / "tiny-lossless.pt"
    save_small("lossless", path, seed=0)
    cifar = pipeline.ModelChoice("lossless", "tiny", str(path), "a tiny model")
    photos = pipeline.ModelChoice("lossless", "tiny-photos", str(path), "a tiny photo model")
    monkeypatch.setattr(pipeline, "KODAK_IMAGES", 1)
    rows = pipeline.compress_lossless(cifar, "smoke", workers=1, datasets=("kodak",), kodak=photos)
    assert list(rows["dataset"]) == ["kodak"] and (rows["model"] == "tiny-photos").all() and rows["exact"].all()
    kodak = pd.read_csv(results_path("lossless", "kodak", "smoke"))
    assert len(kodak) == 1 and kodak["height"].iloc[0] * kodak["width"].iloc[0] == 512 * 768
    assert not results_path("lossless", "cifar10", "smoke").exists()  # only the dataset asked for


def test_coding_one_lossy_model_keeps_the_rows_of_the_others_whatever_commit_made_them(coding_step):
    choices = []
    for seed, name in enumerate(("first", "second")):
        path = coding_step["root"] / f"{name}.pt"
        save_small("lossy", path, seed=seed)
        choices.append(pipeline.ModelChoice("lossy", name, str(path), "a tiny model"))
    out = results_path("lossy", "kodak", "smoke")
    pipeline.compress_lossy(choices[:1], "smoke", final="best-q", workers=1)
    before, before_text = pd.read_csv(out), pd.read_csv(out, keep_default_na=False, dtype=str)
    coding_step["commit"]["sha"] = "b" * 40  # later code adds the second model only
    coding_step["coded"].clear()
    pipeline.compress_lossy(choices[1:], "smoke", final="best-q", workers=1)
    after = pd.read_csv(out)
    assert len(coding_step["coded"]) == pipeline.LOSSY_IMAGES["smoke"]
    assert sorted(after["model"].unique()) == ["first", "second"]
    assert after[after["model"] == "first"].reset_index(drop=True)[before.columns].equals(before)
    kept_text = pd.read_csv(out, keep_default_na=False, dtype=str)  # the cells as written: empty ones stay empty
    assert kept_text[kept_text["model"] == "first"].reset_index(drop=True)[before_text.columns].equals(before_text)
    assert (after[after["model"] == "second"]["git_commit"] == "b" * 40).all()
    coding_step["coded"].clear()  # coding the first again at this commit replaces only its own rows
    pipeline.compress_lossy(choices[:1], "smoke", final="best-q", workers=1)
    again = pd.read_csv(out)
    assert len(again) == 2 * pipeline.LOSSY_IMAGES["smoke"] and (again["git_commit"] == "b" * 40).all()
