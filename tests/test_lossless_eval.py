"""Per-image result rows of the lossless codec (irec.evaluation.lossless): the results schema, as the lossy rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from irec.checkpoint import weights_fingerprint
from irec.codecs.lossless import LosslessCodec
from irec.evaluation.lossless import CODEC_NAME, evaluate_image
from irec.evaluation.results import COLUMNS, read_rows, write_rows
from irec.settings import PAPER_LOSSLESS
from tests.models import small_lossless


@pytest.fixture(scope="module")
def codec() -> LosslessCodec:
    model = small_lossless(0)
    return LosslessCodec(model, weights_fingerprint(model.state_dict()), PAPER_LOSSLESS)


IMAGE = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_a_lossless_row_has_the_schema_columns_the_bpd_split_and_provenance(codec):
    row = evaluate_image(codec, "img", IMAGE, dataset="toy", model="tiny")
    assert set(COLUMNS) - {"split", "sweep_value"} <= {k for k, v in row.items() if v is not None}
    assert (row["codec"], row["codec_label"], row["lossless"]) == (CODEC_NAME, "iREC lossless", True)
    assert (row["dataset"], row["image"], row["height"], row["width"], row["model"]) == ("toy", "img", 20, 30, "tiny")
    assert row["bpd"] == pytest.approx(8 * row["n_bytes"] / IMAGE.size) and row["bpp"] == pytest.approx(3 * row["bpd"])
    parts = row["header_bpd"] + row["latent_bpd"] + row["pixel_bpd"] + row["tail_bpd"]
    assert parts == pytest.approx(row["bpd"])
    assert row["ideal_bpd"] == pytest.approx(row["kl_bpd"] + row["pixel_ideal_bpd"])
    assert row["bit_exact"] is True and row["exact"] is True and row["error"] == "" and row["psnr_db"] == float("inf")
    assert row["params"]["n_beams"] == PAPER_LOSSLESS.n_beams == row["n_beams"]
    assert row["fingerprint"] == codec.fingerprint
    assert row["real_over_elbo"] == pytest.approx(row["bpd"] / row["negative_elbo_bpd"])
    assert row["git_commit"] and row["timestamp"] and "torch" in row["library_versions"]


def test_a_lossless_row_is_written_and_read_back_with_its_params_as_json(codec, tmp_path):
    write_rows(tmp_path / "lossless.csv", [evaluate_image(codec, "img", IMAGE, dataset="toy")])
    saved = read_rows(tmp_path / "lossless.csv")
    assert json.loads(saved["params"][0])["seed"] == PAPER_LOSSLESS.seed and bool(saved["bit_exact"][0])


def test_a_file_that_does_not_decode_is_counted_in_its_row_not_raised(codec, monkeypatch):
    from irec.coder import CorruptStreamError

    def fail(self, data):
        raise CorruptStreamError("the decoded pixels fail the file's pixel check")

    monkeypatch.setattr(LosslessCodec, "decompress", fail)
    row = evaluate_image(codec, "img", IMAGE)
    assert not row["bit_exact"] and not row["exact"] and "pixel check" in row["error"] and np.isnan(row["psnr_db"])
