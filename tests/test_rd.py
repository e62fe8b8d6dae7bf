"""irec.evaluation.rd: Bjontegaard delta rate on known cases, the published Kodak curves, and mean R-D points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from irec.evaluation import rd

RATE = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNR = np.array([26.0, 28.5, 31.0, 34.0, 37.5])


@pytest.mark.parametrize("method", rd.BD_METHODS)
def test_identical_curves_have_a_bd_rate_of_zero(method):
    assert rd.bd_rate(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)
    assert rd.bd_quality(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", rd.BD_METHODS)
def test_a_curve_at_half_the_rate_has_a_bd_rate_of_minus_fifty_percent(method):
    assert rd.bd_rate(RATE, PSNR, RATE / 2, PSNR, method) == pytest.approx(-50.0, abs=1e-9)
    assert rd.bd_rate(RATE / 2, PSNR, RATE, PSNR, method) == pytest.approx(100.0, abs=1e-9)


def test_a_curve_one_db_higher_everywhere_has_a_bd_psnr_of_one_db():
    assert rd.bd_quality(RATE, PSNR, RATE, PSNR + 1.0) == pytest.approx(1.0, abs=1e-9)


def test_the_bd_rate_uses_only_the_overlapping_quality_range():
    # log rate linear in PSNR (both interpolants reproduce it exactly); the test curve covers only the top of the
    # anchor's quality range, at 0.8x its rate there: the anchor's points outside that range do not count
    psnr = 26.0 + 3.0 * np.arange(6)
    rate = 0.1 * 2.0 ** np.arange(6)
    assert rd.bd_rate(rate, psnr, rate[2:] * 0.8, psnr[2:]) == pytest.approx(-20.0, abs=1e-9)
    assert rd.bd_rate(rate, psnr, rate[2:] * 0.8, psnr[2:], "cubic") == pytest.approx(-20.0, abs=1e-9)
    assert rd.bd_rate(rate[2:] * 0.8, psnr[2:], rate, psnr) == pytest.approx(25.0, abs=1e-9)


def test_curves_without_a_common_quality_range_raise_a_clear_error():
    with pytest.raises(rd.BDRateError, match="do not overlap"):
        rd.bd_rate(RATE, PSNR, RATE, PSNR + 20)


def test_the_cubic_fit_needs_four_points_and_says_so():
    with pytest.raises(rd.BDRateError, match="four points"):
        rd.bd_rate(RATE[:3], PSNR[:3], RATE[:3], PSNR[:3], method="cubic")
    with pytest.raises(rd.BDRateError, match="unknown BD method"):
        rd.bd_rate(RATE, PSNR, RATE, PSNR, method="spline")


def test_non_positive_rates_are_rejected():
    with pytest.raises(rd.BDRateError, match="positive"):
        rd.bd_rate(RATE - 0.1, PSNR, RATE, PSNR)


def test_the_published_curves_are_the_methods_of_the_papers_plot_with_their_sources():
    published = rd.load_published_rd()
    assert set(published["method"]) == {
        "iREC (paper, MSE models, real file bits)", "Balle 2018 hyperprior (MSE)",
        "Minnen 2020 channel-conditional (MSE)", "BPG 4:4:4", "JPEG 4:2:0"}
    assert published["source"].str.len().gt(0).all()
    irec = published[published["method"].str.startswith("iREC")].sort_values("bpp")
    assert irec["bpp"].tolist() == [0.0925, 0.2021, 0.4156, 0.7637, 0.9978]
    header = rd.PUBLISHED_RD.read_text().split("method,")[0]
    for phrase in ("mean over the 24 Kodak images", "RGB", "-10 log10(1 - MS-SSIM)", "Theis"):
        assert phrase in header


def test_published_ms_ssim_db_follows_the_convention():
    published = rd.load_published_rd().dropna(subset=["ms_ssim_rgb"])
    assert np.allclose(published["ms_ssim_db"], -10 * np.log10(1 - published["ms_ssim_rgb"]), atol=1e-3)


def test_the_papers_irec_against_bpg_reproduces_its_published_bd_rate_of_about_27_percent():
    curves = rd.published_curves()
    assert all(label.endswith(rd.PUBLISHED_SUFFIX) for label in curves)
    table = rd.bd_rate_table(curves, "BPG 4:4:4 (published)").set_index("curve")
    assert table.loc["iREC (paper, MSE models, real file bits) (published)", "bd_rate_percent"] == pytest.approx(
        27.0, abs=1.0)
    assert table.loc["JPEG 4:2:0 (published)", "bd_rate_percent"] > 100


def test_a_curve_missing_the_quality_is_noted_in_the_bd_table_not_fatal():
    table = rd.bd_rate_table(rd.published_curves(), "BPG 4:4:4 (published)", quality="ms_ssim_db")
    minnen = table[table["curve"].str.startswith("Minnen")].iloc[0]
    assert np.isnan(minnen["bd_rate_percent"]) and "at least two points" in minnen["note"]
    with pytest.raises(rd.BDRateError, match="no anchor curve"):
        rd.bd_rate_table(rd.published_curves(), "VTM")


def test_irec_points_are_means_per_model_and_beta_and_missing_columns_are_skipped(caplog):
    rows = pd.DataFrame({
        "image": ["a", "b", "a", "b"], "model": ["mse"] * 4, "beta": [1, 1, 2, 2],
        "bpp": [0.1, 0.3, 0.5, 0.7], "psnr_db": [27.0, 29.0, 31.0, 33.0], "bpp_ideal": [0.09, 0.29, 0.49, 0.69],
        "sample_psnr": [27.5, 29.5, 31.5, 33.5],
    })
    with caplog.at_level("INFO", logger="irec.evaluation.rd"):
        points = rd.irec_lossy_points(rows)
    assert "ms_ssim_db" in caplog.text
    assert points["bpp"].tolist() == pytest.approx([0.2, 0.6])
    assert points["psnr_db"].tolist() == pytest.approx([28.0, 32.0]) and points["n_images"].tolist() == [2, 2]
    curves = rd.irec_curves(points)
    assert set(curves) == {"iREC mse (real file bits)", "iREC mse (ideal: KL rate, posterior sample)"}
    ideal = curves["iREC mse (ideal: KL rate, posterior sample)"]
    assert ideal["bpp"].tolist() == pytest.approx([0.19, 0.59]) and ideal["psnr_db"].tolist() == [28.5, 32.5]
    assert rd.irec_curves(None) == {}


def test_irec_points_read_the_columns_of_irec_lossy_eval_and_their_older_names_alike():
    rows = pd.DataFrame({"image": ["a", "b"], "model": ["mse"] * 2, "beta": [1, 1], "bpp": [0.2, 0.4],
                         "psnr_db": [28.0, 30.0], "bpp_ideal": [0.19, 0.39], "sample_psnr": [28.5, 30.5],
                         "sample_ms_ssim_db": [12.0, 14.0], "psnr_float": [28.1, 30.1]})
    points = rd.irec_lossy_points(rows)
    assert points.loc[0, "sample_psnr"] == 29.5 and points.loc[0, "sample_ms_ssim_db"] == 13.0
    assert points.loc[0, "psnr_float"] == pytest.approx(29.1)
    older = rows.rename(columns={"sample_psnr": "psnr_posterior_db", "sample_ms_ssim_db": "ms_ssim_posterior_db",
                                 "psnr_float": "psnr_float_db"})  # irec.evaluation.results.LEGACY_NAMES
    assert rd.irec_lossy_points(older).equals(points)
    ideal = rd.irec_curves(older)["iREC mse (ideal: KL rate, posterior sample)"]
    assert ideal["psnr_db"].tolist() == [28.5, 30.5] and ideal["ms_ssim_db"].tolist() == [12.0, 14.0]


def test_irec_lossy_results_are_read_per_profile(tmp_path):
    folder = tmp_path / "lossy"
    folder.mkdir()
    pd.DataFrame({"bpp": [0.5], "model": ["mse"]}).to_csv(folder / "kodak.csv", index=False)
    pd.DataFrame({"bpp": [0.9], "model": ["mse"]}).to_csv(folder / "kodak-smoke.csv", index=False)
    assert rd.read_irec_lossy(tmp_path, "kodak", "cpu")["bpp"].tolist() == [0.5]
    assert rd.read_irec_lossy(tmp_path, "kodak", "smoke")["bpp"].tolist() == [0.9]
    assert rd.read_irec_lossy(tmp_path, "cifar10", "cpu") is None


def test_one_irec_curve_joins_the_models_of_each_distortion_in_rate_order():
    rows = pd.DataFrame({"image": ["a"] * 3, "distortion": ["mse", "mse", "ms_ssim"],
                         "model": ["lossy-mse-0.03", "lossy-mse-0.003", "lossy-msssim-0.08"], "beta": [0.03, 0.003, 0.08],
                         "bpp": [0.9, 0.2, 0.5], "psnr_db": [33.0, 27.0, 30.0], "bpp_ideal": [0.88, 0.19, 0.49],
                         "sample_psnr": [33.5, 27.5, 30.5]})
    curves = rd.irec_curves(rd.irec_lossy_points(rows))
    assert set(curves) == {f"iREC {d} models ({kind})" for d in ("MSE", "MS-SSIM")
                           for kind in ("real file bits", "ideal: KL rate, posterior sample")}
    mse = curves["iREC MSE models (real file bits)"]
    assert mse["bpp"].tolist() == [0.2, 0.9] and mse["model"].tolist() == ["lossy-mse-0.003", "lossy-mse-0.03"]
