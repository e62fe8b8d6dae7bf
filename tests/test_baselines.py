"""irec.codecs.classical codecs and the irec.evaluation.baselines runner / ``irec baselines`` command, on tiny images."""

from __future__ import annotations

import json
import math

import imagecodecs
import numpy as np
import pandas as pd
import pytest
import torch

from irec.codecs import classical
from irec.__main__ import main
from irec.evaluation.baselines import PROFILES, codec_table, profile_settings, run_baselines
from irec.evaluation.results import results_path
from irec.paths import RESULTS
from irec.codecs.classical import FAMILIES, ClassicalCodec, make_codecs
from irec.data import read_image, write_png
from irec.evaluation.results import COLUMNS, read_rows


@pytest.fixture(scope="module")
def photo(shared_data) -> np.ndarray:
    """A 64 x 96 crop of a real photograph (Kodak 23): lossy codecs behave as on natural images."""
    return read_image(shared_data / "kodak" / "kodim23.png")[200:264, 300:396]


@pytest.fixture
def image_folder(tmp_path, photo):
    folder = tmp_path / "images"
    folder.mkdir()
    write_png(folder / "first.png", photo[:32, :48])
    write_png(folder / "second.png", photo[32:, 48:])
    return folder


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.lossless])
def test_every_lossless_codec_gives_the_pixels_back_bit_exactly(name, photo):
    (codec,) = make_codecs([name])
    data = codec.compress(photo)
    assert isinstance(data, bytes) and 0 < len(data) < photo.nbytes
    assert np.array_equal(codec.decompress(data), photo)
    assert codec.roundtrip(photo).decoded.tobytes() == photo.tobytes()


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if not f.lossless])
def test_every_lossy_codec_spends_more_bytes_for_a_better_image_at_the_top_of_its_sweep(name, photo):
    codecs = make_codecs([name])
    assert [c.sweep_value for c in codecs] == list(FAMILIES[name].sweep)
    low, high = codecs[0], codecs[-1]  # every sweep runs from low to high quality (JPEG XL: distance falls)
    trips = [c.roundtrip(photo) for c in (low, high)]
    assert all(t.decoded.shape == photo.shape and t.decoded.dtype == np.uint8 for t in trips)
    assert len(trips[0].data) < len(trips[1].data)
    mse = [np.mean((t.decoded.astype(float) - photo) ** 2) for t in trips]
    assert mse[1] < mse[0]


def test_lossless_and_lossy_webp_set_the_lossless_flag_explicitly_and_write_different_bitstreams(photo):
    (lossless,) = make_codecs(["webp-lossless"])
    lossy = make_codecs(["webp"])[-1]
    assert lossless.params["lossless"] is True and lossy.params["lossless"] is False
    assert b"VP8L" in lossless.compress(photo)[:40]  # lossless WebP chunk
    lossy_file = lossy.compress(photo)
    assert b"VP8 " in lossy_file[:40] and b"VP8L" not in lossy_file[:40]
    assert not np.array_equal(lossy.decompress(lossy_file), photo)


def _jpeg_sampling_factors(data: bytes) -> list[int]:
    """(h << 4 | v) of each component, read from the JPEG start-of-frame segment."""
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            n_components = data[at + 9]
            return [data[at + 10 + 3 * i + 1] for i in range(n_components)]
    raise AssertionError("no start-of-frame marker")


def test_jpeg_codes_chroma_at_4_2_0_as_in_the_papers_plot(photo):
    for codec in make_codecs(["jpeg"])[::4]:
        assert _jpeg_sampling_factors(codec.compress(photo)) == [0x22, 0x11, 0x11]


def test_stand_ins_are_labelled_as_such():
    assert "FLIF stand-in" in FAMILIES["jpegxl-lossless"].label
    assert "BPG 4:4:4 stand-in" in FAMILIES["heif"].label
    assert FAMILIES["heif"].params["chroma"] == 444


def test_a_lossless_codec_whose_decoder_changes_a_pixel_raises(photo, monkeypatch):
    encode, decode = classical._BACKENDS["png"]

    def corrupting_decode(data):
        out = decode(data).copy()
        out[0, 0, 0] ^= 1
        return out

    monkeypatch.setitem(classical._BACKENDS, "png", (encode, corrupting_decode))
    (codec,) = make_codecs(["png"])
    with pytest.raises(classical.RoundTripError, match="1 sub-pixels differ"):
        codec.roundtrip(photo)


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                                 np.zeros((8, 8, 4), np.uint8)])
def test_codecs_refuse_images_that_are_not_uint8_rgb(bad):
    (codec,) = make_codecs(["png"])
    with pytest.raises(classical.CodecInputError, match="uint8 H x W x 3"):
        codec.compress(bad)


def test_unknown_codec_names_raise_a_clear_error_listing_the_choices():
    with pytest.raises(classical.UnknownCodecError, match="unknown codec 'pngg'.*webp-lossless"):
        make_codecs(["pngg"])
    with pytest.raises(ValueError, match="no codec"):
        make_codecs([" "])


def test_groups_expand_to_their_families_without_repeats():
    families = classical.resolve_families(["png", "lossless", "jpeg"])
    assert [f.name for f in families] == ["png", "webp-lossless", "jpegxl-lossless", "jpeg2000-lossless", "jpeg"]
    assert all(not c.lossless for c in make_codecs(["lossy"]))
    assert len(make_codecs(["all"])) == 4 + sum(len(f.sweep) for f in FAMILIES.values() if not f.lossless)


def test_every_codec_has_the_uniform_interface_and_json_parameters():
    for codec in make_codecs(["all"]):
        assert isinstance(codec, ClassicalCodec) and codec.name and codec.label
        json.dumps(codec.params)
        assert codec.library_versions()
        assert (codec.sweep_param is None) == codec.lossless


def test_run_baselines_writes_one_row_per_image_and_codec_setting_with_consistent_rates(photo, tmp_path):
    images = [("a", photo[:32, :48]), ("b", photo[32:, 48:])]
    codecs = make_codecs(["png"]) + make_codecs(["jpeg"])[:2]
    out = tmp_path / "rows.csv"
    threads = torch.get_num_threads()
    df = run_baselines(images, codecs, dataset="tiny", out=out, progress=False)
    assert len(df) == 6
    assert torch.get_num_threads() == threads  # MS-SSIM ran on one thread; the setting is restored
    written = pd.read_csv(out)
    assert list(written.columns) == list(COLUMNS)
    assert len(written) == 6
    png = written[written["codec"] == "png"].set_index("image")
    expected = 8 * len(imagecodecs.png_encode(photo[:32, :48], level=9)) / (32 * 48 * 3)
    assert png.loc["a", "bpd"] == pytest.approx(expected)
    assert (png["bit_exact"]).all() and (png["psnr_db"] == math.inf).all()
    assert np.allclose(written["bpp"], 3 * written["bpd"])
    jpeg = written[written["codec"] == "jpeg"]
    assert (jpeg["psnr_db"] < 60).all() and set(jpeg["sweep_value"]) == {5, 10}
    assert written["git_commit"].notna().all() and written["timestamp"].notna().all()
    assert json.loads(written["params"][0])["level"] == 9


def test_the_cli_codes_an_image_folder_and_appends_on_a_second_run(image_folder, tmp_path, capsys):
    out = tmp_path / "out" / "baselines.csv"
    argv = ["baselines", "--dataset", str(image_folder), "--codecs", "png,jpeg2000-lossless", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    first = pd.read_csv(out)
    assert sorted(first["image"].unique()) == ["first", "second"] and len(first) == 4
    assert first["bit_exact"].all()
    assert "measured here" in capsys.readouterr().out
    assert main([*argv[:4], "png", *argv[5:]]) == 0
    assert len(pd.read_csv(out)) == 6


def test_the_cli_lists_the_codecs(capsys):
    assert main(["baselines", "--list"]) == 0
    text = capsys.readouterr().out
    for name in FAMILIES:
        assert name in text
    assert set(codec_table()["codec"]) == set(FAMILIES)


def test_the_cli_reports_an_unknown_codec_or_missing_arguments_as_an_error(image_folder, tmp_path, capsys):
    assert main(["baselines", "--dataset", str(image_folder), "--codecs", "bpg", "--out", str(tmp_path / "x.csv")]) == 2
    assert "unknown codec 'bpg'" in capsys.readouterr().err
    assert main(["baselines", "--codecs", "png"]) == 2
    assert "--dataset and --out" in capsys.readouterr().err


def test_profiles_give_defaults_that_explicit_values_override():
    assert profile_settings("smoke").limit == 2
    assert profile_settings("cpu", limit=5, codecs=["png"]).codecs == ("png",)
    assert profile_settings("paper").limit is None and set(PROFILES) == {"smoke", "cpu", "paper"}
    with pytest.raises(ValueError, match="unknown profile"):
        profile_settings("fast")


def test_smoke_runs_write_beside_the_reference_csv_not_over_it():
    assert results_path("baselines", "kodak", "cpu") == results_path("baselines", "kodak", "paper") == RESULTS / "baselines" / "kodak.csv"
    assert results_path("baselines", "/data/my_photos", "smoke") == RESULTS / "baselines" / "my_photos-smoke.csv"


def test_a_suite_run_covers_kodak_with_every_codec_and_cifar10_with_the_lossless_ones():
    from irec.evaluation.baselines import suite_runs

    runs = {run.dataset: run for run in suite_runs("cpu")}
    assert set(runs) == {"kodak", "cifar10"}
    assert runs["kodak"].codecs == ("all",) and runs["cifar10"].codecs == ("lossless",)
    assert runs["cifar10"].limit == 2000 and runs["kodak"].out_csv == "baselines/kodak.csv"
    (single,) = suite_runs("smoke", "some/folder", out_csv="x.csv")
    assert (single.dataset, single.limit, single.out_csv) == ("some/folder", 2, "x.csv")
    assert all(run.out_csv.endswith("-smoke.csv") for run in suite_runs("smoke"))


def test_cifar10_rows_record_the_default_split_they_used(shared_data, tmp_path):
    from irec.evaluation.baselines import run_dataset

    rows = run_dataset("cifar10", ["png"], limit=2, out=tmp_path / "c.csv", progress=False, workers=1)
    assert (rows["split"] == "test").all() and (read_rows(tmp_path / "c.csv")["split"] == "test").all()
