"""Per-image result rows of the lossy codec (irec.evaluation.lossy): the schema, the rate split, the quality."""

from __future__ import annotations

import json

import numpy as np
import pytest

from irec.checkpoint import weights_fingerprint
from irec.codecs.lossy import LossyCodec
from irec.evaluation.lossy import evaluate_dataset, evaluate_image
from irec.evaluation.results import COLUMNS, read_rows
from tests.models import small_lossy


@pytest.fixture(scope="module")
def codec() -> LossyCodec:
    model = small_lossy(beta=0.003, seed=0)
    return LossyCodec(model, weights_fingerprint(model.state_dict()))


def _images() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    return [(f"img{i}", rng.integers(0, 256, size, dtype=np.uint8)) for i, size in enumerate([(64, 64, 3), (70, 100, 3)])]


def test_an_image_row_has_the_schema_columns_the_rate_split_and_provenance(codec):
    name, image = _images()[1]
    row = evaluate_image(codec, name, image, dataset="toy")
    assert set(COLUMNS) - {"split"} <= {k for k, v in row.items() if v is not None}
    assert (row["dataset"], row["image"], row["height"], row["width"]) == ("toy", name, 70, 100)
    assert row["bpp"] == pytest.approx(8 * row["n_bytes"] / (70 * 100))
    assert row["bpp_header"] + row["bpp_z2"] + row["bpp_z1"] == pytest.approx(row["bpp"])
    assert row["exact"] is True and row["bit_exact"] is False and row["error"] == ""
    assert (row["beta"], row["sweep_value"], row["fingerprint"]) == (0.003, 0.003, codec.fingerprint)
    assert row["params"]["n_beams"] == codec.params.n_beams and row["params"]["final"] == "best-q"
    assert row["psnr_db"] == pytest.approx(row["psnr_float"], abs=0.5)  # rounding to uint8 barely moves PSNR
    assert np.isfinite([row["sample_psnr"], row["sample_psnr_float"]]).all()
    assert row["bpp_ideal"] == pytest.approx(row["bpp_ideal_z2"] + row["bpp_ideal_z1"])
    assert row["git_commit"] and row["timestamp"] and row["encode_s"] > 0 and row["decode_s"] > 0


def test_an_image_large_enough_for_five_scales_gets_ms_ssim_for_the_file_and_the_posterior_sample(codec):
    image = np.random.default_rng(2).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    row = evaluate_image(codec, "big", image, dataset="toy")
    assert 0 < row["ms_ssim"] <= 1 and row["ms_ssim_db"] == pytest.approx(-10 * np.log10(1 - row["ms_ssim"]))
    assert 0 < row["sample_ms_ssim"] <= 1


def test_a_dataset_run_appends_one_row_per_image_to_the_csv(codec, tmp_path):
    out = tmp_path / "lossy.csv"
    frame = evaluate_dataset(codec, _images(), dataset="toy", out=out, progress=False)
    saved = read_rows(out)
    assert list(saved["image"]) == ["img0", "img1"] == list(frame["image"])
    assert saved["n_bytes"].tolist() == frame["n_bytes"].tolist()
    assert json.loads(saved["params"][0])["seed"] == 42


def test_evaluating_no_images_raises_a_clear_error(codec):
    with pytest.raises(ValueError, match="no images"):
        evaluate_dataset(codec, [], dataset="empty", progress=False)
