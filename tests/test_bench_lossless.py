"""``python -m irec.bench lossless`` (paper section 4.1, Table 1) on a tiny untrained RVAE."""

from __future__ import annotations

import contextlib
import io

import json

import numpy as np
import pandas as pd
import pytest
import torch

from irec.bench import lossless
from irec.checkpoint import save_model
from irec.data import write_png
from irec.evaluation.lossless import CODEC_NAME
from irec.evaluation.results import COLUMNS
from irec.settings import LOSSLESS_DEFAULT
from tests.models import small_lossless

ROW_COLUMNS = {
    *COLUMNS, "header_bpd", "latent_bpd", "pixel_bpd", "tail_bpd", "kl_bpd", "negative_elbo_bpd", "real_over_elbo",
    "exact", "error", "n_beams", "extra_samples", "kl_per_step", "block_size", "n_candidates", "model_fingerprint",
    "model_name", "model_source",
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = small_lossless(0)
    torch.manual_seed(0)
    with torch.no_grad():  # q differs from p, so the latents carry real bits
        for layer in model.up:
            layer.conv1.bias.add_(0.5 * torch.randn_like(layer.conv1.bias))
    path = tmp_path_factory.mktemp("model") / "smoke-rvae.pt"
    fingerprint = save_model(model, path)
    return path, fingerprint


@pytest.fixture(scope="module")
def benchmark_run(saved_model, tmp_path_factory, shared_data):
    path, _ = saved_model
    out = tmp_path_factory.mktemp("bench") / "lossless.csv"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = lossless.main(["--model", str(path), "--images", "3", "--n-beams", "4", "--kodak", "1",
                              "--kodak-crop", "24", "--out", str(out), "--workers", "2"])
    return code, pd.read_csv(out), buffer.getvalue()


def test_the_benchmark_writes_tidy_rows_with_coder_settings_model_and_provenance(benchmark_run, saved_model):
    code, df, _ = benchmark_run
    assert code == 0
    assert ROW_COLUMNS <= set(df.columns) and list(df.columns[:len(COLUMNS)]) == list(COLUMNS)
    cifar = df[df.dataset == "cifar10"]
    assert sorted(cifar.codec.unique()) == sorted([CODEC_NAME, "jpegxl-lossless", "png", "webp-lossless"])
    assert (cifar.groupby("codec").size() == 3).all() and cifar.lossless.all()
    ours = df[df.codec == CODEC_NAME]
    assert (ours.params.map(json.loads).map(lambda p: p["n_beams"]) == 4).all()
    assert (ours.model_fingerprint == saved_model[1]).all()
    assert (ours.n_beams == 4).all() and (ours.block_size == LOSSLESS_DEFAULT.block_size).all()


def test_every_round_trip_is_counted_bit_exact_and_the_bpd_split_adds_up(benchmark_run):
    _, df, _ = benchmark_run
    assert df.bit_exact.astype(bool).all()
    ours = df[df.codec == CODEC_NAME]
    assert ours.exact.astype(bool).all()
    parts = ours.header_bpd + ours.latent_bpd + ours.pixel_bpd + ours.tail_bpd
    assert parts.to_numpy() == pytest.approx(ours.bpd.to_numpy(), abs=1e-9)
    assert (ours.bpd == 8 * ours.n_bytes / ours.n_subpixels).all()
    assert (ours.latent_bpd > 0).all()


def test_kodak_images_are_coded_with_the_same_model_at_the_requested_crop(benchmark_run):
    _, df, _ = benchmark_run
    kodak = df[df.dataset == "kodak"]
    assert len(kodak) == 4 and (kodak.height == 24).all() and (kodak.width == 24).all()


def test_the_printed_table_shows_the_measured_figures_beside_the_targets(benchmark_run):
    _, df, text = benchmark_run
    assert "3/3 (100%)" in text
    assert "<= 1.10 (paper 4.18/3.55 = 1.18)" in text
    assert "<= 1 s" in text and "<= 0.5 s" in text
    assert "< WebP lossless" in text and "WebP lossless bpd" in text and "JPEG XL" in text
    mean_bpd = df[(df.dataset == "cifar10") & (df.codec == CODEC_NAME)].bpd.mean()
    assert f"{mean_bpd:.4f}" in text
    assert "Kodak, 1 images (24x24 centre crops)" in text


def test_the_sweep_codes_one_image_under_each_setting(saved_model, tmp_path, shared_data, capsys):
    out = tmp_path / "lossless.csv"
    code = lossless.main(["--model", str(saved_model[0]), "--sweep", "--sweep-images", "1", "--sweep-n-beams",
                          "2,4", "--sweep-extra-samples", "1.2", "--sweep-block-size", "8192", "--out", str(out)])
    assert code == 0
    df = pd.read_csv(tmp_path / "lossless-sweep.csv")
    assert sorted(df.n_beams) == [2, 4] and df.image.nunique() == 1 and df.bit_exact.all()
    text = capsys.readouterr().out
    assert "real_over_elbo" in text and "B2 1+eps=1.2" in text and "B4 1+eps=1.2" in text


def test_the_sweep_codes_each_kl_floor_and_labels_the_rows_with_it(saved_model, tmp_path, shared_data, capsys):
    out = tmp_path / "lossless.csv"
    code = lossless.main(["--model", str(saved_model[0]), "--sweep", "--sweep-images", "1", "--sweep-n-beams", "2",
                          "--sweep-extra-samples", "1.2", "--sweep-block-size", "8192", "--sweep-ignore-kl-below",
                          "0,0.01", "--out", str(out)])
    assert code == 0
    df = pd.read_csv(tmp_path / "lossless-sweep.csv")
    assert sorted(df.ignore_kl_below) == [0.0, 0.01] and df.bit_exact.all()
    assert sorted(df.setting.str.endswith("scored KL>=0.01")) == [False, True]


def test_the_sweep_codes_centre_crops_of_any_dataset(saved_model, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        write_png(folder / f"{name}.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    code = lossless.main(["--model", str(saved_model[0]), "--sweep", "--sweep-dataset", str(folder),
                          "--sweep-images", "2", "--sweep-crop", "16", "--sweep-n-beams", "2",
                          "--sweep-extra-samples", "1.2", "--sweep-block-size", "8192",
                          "--out", str(tmp_path / "lossless.csv")])
    assert code == 0
    df = pd.read_csv(tmp_path / "lossless-sweep.csv")
    assert sorted(df.image) == ["a", "b"] and (df.height == 16).all() and (df.width == 16).all()
    assert df.bit_exact.all() and (df.dataset == str(folder)).all()
    assert "2 " + str(folder) + " image(s), 16-px centre crops" in capsys.readouterr().out


def test_a_bad_image_count_is_refused_with_a_clear_message(saved_model, capsys):
    with pytest.raises(SystemExit):
        lossless.main(["--model", str(saved_model[0]), "--images", "0"])
    assert "--images must be at least 1" in capsys.readouterr().err


def test_a_round_trip_that_is_not_bit_exact_is_counted_and_fails_the_run(saved_model, tmp_path, monkeypatch,
                                                                         shared_data, capsys):
    decompress = lossless.LosslessCodec.decompress

    def off_by_one(self, data):
        image = decompress(self, data).copy()
        image[0, 0, 0] ^= 1
        return image

    out = tmp_path / "lossless.csv"
    monkeypatch.setattr(lossless.LosslessCodec, "decompress", off_by_one)
    code = lossless.main(["--model", str(saved_model[0]), "--images", "2", "--no-classical", "--out", str(out),
                          "--workers", "1"])  # the patched decoder is this process's
    assert code == 1
    assert not pd.read_csv(out).bit_exact.any() and not pd.read_csv(out).exact.any()
    assert "0/2 (0%)" in capsys.readouterr().out
