"""``python -m irec.bench kodak``: lossless Kodak one image at a time, its tiles over worker processes, beside the
paper's 3.67 bpd and the 60 s / 30 s targets (a tiny untrained RVAE on centre crops)."""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest

from irec.bench import kodak
from irec.evaluation.lossless import CODEC_NAME
from tests.models import save_small


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("bench")
    model = folder / "tiny-rvae.pt"
    fingerprint = save_small("lossless", model)
    out = folder / "kodak.csv"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = kodak.main(["--model", str(model), "--images", "2", "--crop", "40", "--tile-size", "16",
                           "--workers", "2", "--out", str(out)])
    return code, pd.read_csv(out), buffer.getvalue(), fingerprint


def test_each_image_is_coded_as_tiles_over_two_workers_and_decoded_bit_exactly(bench_run):
    code, df, _, fingerprint = bench_run
    assert code == 0
    ours = df[df.codec == CODEC_NAME]
    assert len(ours) == 2 and ours.bit_exact.astype(bool).all() and (ours.workers == 2).all()
    assert (ours.height == 40).all() and (ours.model_fingerprint == fingerprint).all()
    assert (ours.bpd == 8 * ours.n_bytes / ours.n_subpixels).all()
    assert sorted(df.codec.unique()) == sorted([CODEC_NAME, "jpegxl-lossless", "png", "webp-lossless"])


def test_the_summary_sets_the_times_and_the_rate_beside_their_targets(bench_run):
    _, df, text, _ = bench_run
    assert "<= 60 s on the 2-core CPU" in text and "<= 30 s on the 2-core CPU" in text
    assert "< 3.67 (paper, published)" in text
    ours = df[df.codec == CODEC_NAME]
    assert f"{ours.bpd.mean():.4f}" in text and "tiles of 16" in text


def test_a_tile_size_the_format_cannot_hold_is_refused_before_any_coding(capsys):
    with pytest.raises(SystemExit):
        kodak.main(["--model", "x", "--tile-size", "15"])
    assert "tile" in capsys.readouterr().err


def test_the_coder_options_set_the_setting_every_tile_is_coded_with(tmp_path, shared_data):
    model = tmp_path / "tiny-rvae.pt"
    save_small("lossless", model)
    out = tmp_path / "kodak.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        code = kodak.main(["--model", str(model), "--images", "1", "--crop", "24", "--tile-size", "16", "--workers",
                           "1", "--n-beams", "3", "--kl-per-step", "4", "--refine-steps", "2", "--no-classical",
                           "--out", str(out)])
    ours = pd.read_csv(out)
    assert code == 0 and ours.bit_exact.astype(bool).all()
    assert (ours.n_beams == 3).all() and (ours.kl_per_step == 4).all()
    assert (ours.refine_steps == 2).all() and ours.setting.str.endswith(" refine=2").all()
