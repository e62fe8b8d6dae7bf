"""``python -m irec.bench lossy`` (irec.bench.lossy) on tiny untrained models and two 64x64 images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from irec.bench.lossy import (
    CLASSICAL,
    IDEAL,
    OURS,
    TWO_RATES,
    bd_rows,
    main,
    psnr_at_rate,
    webp_gap,
)
from irec.data.images import write_png
from irec.settings import LOSSY_DEFAULT, LOSSY_LOW_RATE
from tests.models import save_small

SUMMARY_COLUMNS = {"model", "beta", "n_images", "bpp", "bpp_ideal", "rate_over_kl_pct", "psnr_db", "psnr_float",
                   "sample_psnr", "psnr_gap_db", "ms_ssim_db", "encode_s", "decode_s", "n_exact",
                   "psnr_minus_jpeg_db", "psnr_minus_webp_db", "target_encode_s", "target_decode_s",
                   "target_rate_over_kl_pct", "target_psnr_gap_db", "baselines", "git_commit", "device", "timestamp"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bench_lossy")
    folder = root / "images"
    rng = np.random.default_rng(3)
    for name in ("a", "b"):  # smooth gradients plus noise: compressible enough for the classical sweeps
        ramp = np.linspace(0, 200, 64)[None, :, None] + np.linspace(0, 50, 64)[:, None, None]
        write_png(folder / f"{name}.png", np.clip(ramp + rng.normal(0, 8, (64, 64, 3)), 0, 255).astype(np.uint8))
    models = []
    for i, beta in enumerate((0.001, 0.03)):
        path = root / f"smoke-beta{beta:g}.pt"
        save_small("lossy", path, beta=beta, seed=i)
        models.append(str(path))
    return {"root": root, "folder": str(folder), "models": models}


def _run(setup, capsys, out, *extra) -> str:
    argv = ["--images", "2", "--dataset", setup["folder"], "--out", str(out), "--no-progress", "--workers", "1", *extra]
    assert main(argv) == 0
    return capsys.readouterr().out


def test_two_models_give_a_summary_per_model_exact_decodes_and_bd_rates_against_every_codec(setup, capsys):
    out = setup["root"] / "two" / "lossy.csv"
    text = _run(setup, capsys, out, "--models", *setup["models"], "--rerun-baselines", "--workers", "2")
    table = pd.read_csv(out)
    assert SUMMARY_COLUMNS <= set(table.columns)
    assert len(table) == 2 and (table["n_images"] == 2).all() and (table["n_exact"] == 2).all()
    assert table["bpp"].is_monotonic_increasing
    assert np.allclose(table["bpp_header"] + table["bpp_z2"] + table["bpp_z1"], table["bpp"])
    assert np.allclose(table["psnr_gap_db"], table["psnr_db"] - table["sample_psnr"])
    assert table["baselines"].str.contains("measured in this run").all()
    images = pd.read_csv(out.with_name("lossy-images.csv"))
    assert len(images) == 4 and images["exact"].all() and (images["final"] == "best-q").all()
    classical = pd.read_csv(out.with_name("lossy-baselines.csv"))
    assert set(classical["codec"]) == set(CLASSICAL) and set(classical["image"]) == {"a", "b"}
    bd = pd.read_csv(out.with_name("lossy-bd.csv"))
    assert set(bd["curve"]) == {OURS, IDEAL} and (bd["n_points"] == 2).all()
    assert any(a.endswith("(published)") and a.startswith("iREC") for a in bd["anchor"])
    assert bd["anchor"].nunique() == len(CLASSICAL) + 1
    # each BD-rate is a number or says why it is undefined (e.g. no common PSNR range with an untrained model)
    assert (bd["bd_rate_percent"].notna() | bd["note"].fillna("").str.len().gt(0)).all()
    assert TWO_RATES not in text
    for words in ("rate_over_kl_pct", "psnr_gap_db", "n_exact", "BD-rate", "(published)", "gap to WebP",
                  "measured in this run"):
        assert words in text


def test_one_model_prints_needs_two_rates_and_reuses_baselines_that_cover_the_images(setup, capsys):
    first = setup["root"] / "first" / "lossy.csv"
    _run(setup, capsys, first, "--models", setup["models"][0], "--rerun-baselines", "--codecs", "jpeg,webp")
    baselines = first.with_name("lossy-baselines.csv")
    out = setup["root"] / "one" / "lossy.csv"
    text = _run(setup, capsys, out, "--models", setup["models"][0], "--baselines", str(baselines),
                "--codecs", "jpeg,webp", "--final", "best-q")
    assert f"reused {len(pd.read_csv(baselines))} rows of {baselines}" in text
    assert TWO_RATES in text
    bd = pd.read_csv(out.with_name("lossy-bd.csv"))
    assert (bd["note"] == TWO_RATES).all() and bd["bd_rate_percent"].isna().all()
    assert not out.with_name("lossy-baselines.csv").exists()
    assert pd.read_csv(out)["final"].tolist() == ["best-q"]


def test_baselines_missing_a_codec_are_measured_in_this_run(setup, capsys):
    first = setup["root"] / "first-jpeg" / "lossy.csv"
    _run(setup, capsys, first, "--models", setup["models"][0], "--rerun-baselines", "--codecs", "jpeg")
    out = setup["root"] / "partial" / "lossy.csv"
    text = _run(setup, capsys, out, "--models", setup["models"][0], "--codecs", "jpeg,webp",
                "--baselines", str(first.with_name("lossy-baselines.csv")))
    assert "lacks webp" in text and "measured in this run" in text


def test_per_image_rows_that_cover_a_model_are_reused_and_others_are_coded(setup, capsys):
    first = setup["root"] / "rows" / "lossy.csv"
    _run(setup, capsys, first, "--models", setup["models"][0], "--rerun-baselines", "--codecs", "jpeg")
    coded = first.with_name("lossy-images.csv")
    out = setup["root"] / "reuse" / "lossy.csv"
    text = _run(setup, capsys, out, "--models", *setup["models"], "--codecs", "jpeg", "--rows", str(coded),
                "--baselines", str(first.with_name("lossy-baselines.csv")))
    table = pd.read_csv(out).set_index("model")
    assert table["irec_rows"].tolist().count("coded in this run") == 1
    assert f"reused from {coded}" in table["irec_rows"].tolist()
    assert "reused from" in text and (table["n_exact"] == 2).all()
    again = setup["root"] / "other-final" / "lossy.csv"  # rows of another final are not reused
    _run(setup, capsys, again, "--models", setup["models"][0], "--codecs", "jpeg", "--rows", str(coded),
         "--final", "beams", "--baselines", str(first.with_name("lossy-baselines.csv")))
    assert pd.read_csv(again)["irec_rows"].tolist() == ["coded in this run"]


def test_psnr_at_rate_interpolates_in_log_rate_and_is_nan_outside_the_curve():
    curve = pd.DataFrame({"bpp": [0.25, 1.0], "psnr_db": [25.0, 35.0]})
    assert psnr_at_rate(curve, 0.5) == pytest.approx(30.0)
    assert np.isnan(psnr_at_rate(curve, 2.0))


def test_an_unknown_model_raises_a_clear_error(setup):
    with pytest.raises(ValueError, match="no model file or model named"):
        main(["--models", "no-such-model", "--images", "2", "--dataset", setup["folder"], "--no-progress"])


def test_bd_rows_measure_half_the_rate_at_equal_psnr_as_minus_fifty_percent_and_name_the_gap():
    webp = pd.DataFrame({"bpp": [0.2, 0.4, 0.8, 1.6], "psnr_db": [26.0, 29.0, 32.0, 35.0]})
    ours = webp.assign(bpp=webp["bpp"] * 0.5)
    ideal = webp.assign(bpp=webp["bpp"] * 0.25)
    bd = bd_rows({OURS: ours, IDEAL: ideal}, {"WebP": webp}, "pchip")
    assert bd.set_index("curve")["bd_rate_percent"].to_dict() == pytest.approx({OURS: -50.0, IDEAL: -75.0})
    assert "-50.0% with real file bits" in webp_gap(bd) and "beat WebP" in webp_gap(bd)
    worse = bd_rows({OURS: webp.assign(bpp=webp["bpp"] * 2), IDEAL: ideal}, {"WebP": webp}, "pchip")
    assert "+100.0%" in webp_gap(worse) and "the gap is the coder's" in webp_gap(worse)


def test_coder_overrides_reach_the_files_and_are_named_in_the_summary(setup, capsys):
    first = setup["root"] / "first-override" / "lossy.csv"
    _run(setup, capsys, first, "--models", setup["models"][0], "--rerun-baselines", "--codecs", "jpeg")
    out = setup["root"] / "override" / "lossy.csv"
    text = _run(setup, capsys, out, "--models", setup["models"][0], "--codecs", "jpeg", "--extra-samples", "1.2",
                "--block-size", "256", "--baselines", str(first.with_name("lossy-baselines.csv")))
    row = pd.read_csv(out).iloc[0]
    expected = LOSSY_DEFAULT.with_(extra_samples=1.2, block_size=256)
    assert row["coder"] == "default, extra_samples=1.2, block_size=256" and row["block_size"] == 256
    assert row["n_candidates"] == expected.n_candidates != LOSSY_DEFAULT.n_candidates
    assert row["model_channels"] == "N=8, M=8"
    images = pd.read_csv(out.with_name("lossy-images.csv"))
    assert (images["params"].map(json.loads).map(lambda p: (p["extra_samples"], p["block_size"])) == (1.2, 256)).all()
    assert "extra_samples=1.2" in text


def test_rows_coded_with_another_refinement_are_not_reused(setup, capsys):
    first = setup["root"] / "refined" / "lossy.csv"
    _run(setup, capsys, first, "--models", setup["models"][0], "--rerun-baselines", "--codecs", "jpeg")
    baselines = str(first.with_name("lossy-baselines.csv"))
    coded = str(first.with_name("lossy-images.csv"))
    unrefined = setup["root"] / "unrefined" / "lossy.csv"
    _run(setup, capsys, unrefined, "--models", setup["models"][0], "--codecs", "jpeg", "--rows", coded,
         "--refine-steps", "0", "--baselines", baselines)
    table = pd.read_csv(unrefined)
    assert table["irec_rows"].tolist() == ["coded in this run"] and table["refine_steps"].tolist() == [0]
    rows = pd.read_csv(unrefined.with_name("lossy-images.csv"))
    assert np.allclose(rows["bpp_kl_coded"], rows["bpp_ideal"])  # nothing refined: the amortized posterior coded
    same = setup["root"] / "same" / "lossy.csv"
    _run(setup, capsys, same, "--models", setup["models"][0], "--codecs", "jpeg", "--rows", coded,
         "--baselines", baselines)
    assert pd.read_csv(same)["irec_rows"].tolist() == [f"reused from {coded}"]


def test_rows_coded_with_the_low_rate_setting_beside_are_not_reused_for_one_setting_and_are_counted(setup, capsys):
    first = setup["root"] / "paired" / "lossy.csv"
    _run(setup, capsys, first, "--models", setup["models"][0], "--rerun-baselines", "--codecs", "jpeg")
    coded, baselines = (str(first.with_name(f"lossy-{side}.csv")) for side in ("images", "baselines"))
    paired = pd.read_csv(first)
    assert paired["n_low_rate"].tolist() == [int(pd.read_csv(coded)["low_rate"].sum())]
    assert paired["low_rate_block_size"].tolist() == [LOSSY_LOW_RATE.block_size]
    single = setup["root"] / "single" / "lossy.csv"
    _run(setup, capsys, single, "--models", setup["models"][0], "--codecs", "jpeg", "--rows", coded,
         "--baselines", baselines, "--no-low-rate")
    table = pd.read_csv(single)
    assert table["irec_rows"].tolist() == ["coded in this run"] and table["n_low_rate"].tolist() == [0]
    assert table["low_rate_block_size"].isna().all() and table["coder"].str.endswith("--no-low-rate").all()
