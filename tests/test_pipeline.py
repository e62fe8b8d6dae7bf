"""The suite's model steps: without a shipped model the cpu profile says so instead of failing."""

from __future__ import annotations

from irec import paths, pipeline


def test_without_a_shipped_model_the_cpu_profile_names_what_to_do(shipped):
    choice = pipeline.lossless_model("cpu", train=False)
    assert choice.path is None and "--train" in choice.status and "lossless-cifar10" in choice.status
    assert pipeline.compress_lossless(choice, "cpu") is None
    (lossy,) = pipeline.lossy_models("cpu", train=False)
    assert lossy.path is None and pipeline.compress_lossy([lossy], "cpu") is None


def test_results_go_to_the_reference_csv_except_in_the_smoke_profile():
    assert pipeline.results_csv("lossless", "cifar10", "cpu") == paths.RESULTS / "lossless" / "cifar10.csv"
    assert pipeline.results_csv("lossy", "kodak", "smoke").name == "kodak-smoke.csv"


def test_the_cpu_profile_trains_four_mse_rates_and_one_ms_ssim_model_under_their_shipped_names():
    rates = pipeline.LOSSY_RATES["cpu"]
    assert sum(d == "mse" for d, _ in rates) >= 4 and sum(d == "ms_ssim" for d, _ in rates) >= 1
    assert pipeline.lossy_name("mse", 0.01) == "lossy-mse-0.01"
    assert pipeline.lossy_name("ms_ssim", 0.08) == "lossy-msssim-0.08"
