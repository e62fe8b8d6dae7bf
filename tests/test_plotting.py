"""irec.evaluation.plotting: R-D, per-image and overhead figures from small fixture results, written as PNG/PDF/SVG."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from irec.evaluation import plotting
from irec.evaluation import rd


def lossy_rows(images=("kodim01", "kodim02", "kodim03")) -> pd.DataFrame:
    """Two lossy codecs x 4 settings x images, plus one lossless row that the R-D plots must ignore."""
    rows = []
    for k, image in enumerate(images):
        for codec, label, offset in (("jpeg", "JPEG 4:2:0 (libjpeg-turbo)", 0.0),
                                     ("heif", "HEIF/HEVC 4:4:4 (x265; BPG 4:4:4 stand-in)", 2.0)):
            for level, bpp in enumerate((0.2, 0.4, 0.8, 1.6)):
                psnr = 26.0 + offset + 4.0 * np.log2(bpp / 0.2) + k
                rows.append({"dataset": "kodak", "image": image, "codec": codec, "codec_label": label,
                             "lossless": False, "sweep_param": "level", "sweep_value": level, "bpp": bpp,
                             "psnr_db": psnr, "ms_ssim": 1 - 10 ** (-psnr / 25), "ms_ssim_db": psnr / 2.5,
                             "encode_s": 0.01, "decode_s": 0.01})
        rows.append({"dataset": "kodak", "image": image, "codec": "png", "codec_label": "PNG", "lossless": True,
                     "sweep_param": "", "sweep_value": np.nan, "bpp": 12.0, "psnr_db": np.inf, "ms_ssim": 1.0,
                     "ms_ssim_db": np.inf, "encode_s": 0.1, "decode_s": 0.1})
    return pd.DataFrame(rows)


def assert_written(paths):
    assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)


def labels(fig) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def test_the_rd_figure_marks_published_curves_and_is_saved_in_three_formats(tmp_path):
    classical = rd.classical_curves(lossy_rows())
    fig = plotting.rd_figure(classical, rd.published_curves(), dataset="Kodak")
    shown = labels(fig)
    assert "JPEG 4:2:0 (libjpeg-turbo)" in shown and "PNG" not in shown
    published = [label for label in shown if "BPG 4:4:4" in label and "stand-in" not in label]
    assert published == ["BPG 4:4:4 (published)"]
    assert "iREC (paper, MSE models, real file bits) (published)" in shown
    psnr_axis = fig.axes[0]
    assert "Kodak" in psnr_axis.get_title() and "[dB]" in psnr_axis.get_ylabel() and "bits per pixel" in \
        psnr_axis.get_xlabel()
    styles = {line.get_label(): line.get_linestyle() for line in psnr_axis.get_lines()}
    assert styles["BPG 4:4:4 (published)"] == ":" and styles["JPEG 4:2:0 (libjpeg-turbo)"] == "-"
    assert_written(plotting.save_figure(fig, "kodak_rd", tmp_path))


def test_published_curves_given_without_the_suffix_still_get_it():
    curve = pd.DataFrame({"bpp": [0.1, 0.5], "psnr_db": [27.0, 32.0], "ms_ssim_db": [10.0, 15.0]})
    fig = plotting.rd_figure({}, {"Some codec": curve})
    assert labels(fig) == ["Some codec (published)"]


def test_irec_curves_are_drawn_solid_for_real_bits_and_dashed_for_the_ideal_rate():
    points = pd.DataFrame({"model": ["mse", "mse"], "beta": [1, 2], "bpp": [0.2, 0.5], "psnr_db": [28.0, 31.0],
                           "bpp_ideal": [0.19, 0.48], "psnr_posterior_db": [28.6, 31.7], "n_images": [2, 2]})
    fig = plotting.rd_figure({}, {}, rd.irec_curves(points))
    psnr_styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert psnr_styles == {"iREC mse (real file bits)": "-", "iREC mse (ideal: KL rate, posterior sample)": "--"}
    assert fig.axes[1].get_lines() == []  # no MS-SSIM columns: skipped, not an error


def test_the_per_image_grid_has_one_panel_per_image(tmp_path):
    fig = plotting.per_image_figure(lossy_rows(), columns=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["kodim01", "kodim02", "kodim03"]
    assert len(visible[0].get_lines()) == 2
    assert_written(plotting.save_figure(fig, "kodak_rd_per_image", tmp_path))
    with pytest.raises(ValueError, match="no lossy rows"):
        plotting.per_image_figure(lossy_rows().query("lossless"))


def test_the_overhead_figure_plots_each_metric_against_each_swept_parameter(tmp_path):
    sweep = pd.DataFrame([{"kl_per_step": omega, "extra_samples": eps, "n_beams": beams,
                           "real_over_kl": 1 + 1 / omega, "psnr_gap_db": 1 / eps}
                          for omega in (8, 16) for eps in (1.0, 2.0) for beams in (1, 10)])
    (tmp_path / "bench").mkdir()
    sweep.to_csv(tmp_path / "bench" / "sweep.csv", index=False)
    fig = plotting.overhead_figure(plotting.read_sweep(tmp_path))
    assert len(fig.axes) == 6
    top_left = fig.axes[0].get_lines()[0]
    assert top_left.get_xdata().tolist() == [8, 16] and top_left.get_ydata().tolist() == [1.125, 1.0625]
    assert_written(plotting.save_figure(fig, "coder_overhead", tmp_path / "figures"))


def test_with_one_parameter_moved_at_a_time_each_panel_uses_only_its_own_rows_and_the_base():
    base = {"kl_per_step": 3.0, "extra_samples": 1.0, "n_beams": 10, "real_over_kl": 1.0, "psnr_gap_db": 0.0}
    sweep = pd.DataFrame([{**base, "varied": "base"},
                          {**base, "varied": "n_beams", "n_beams": 1, "real_over_kl": 2.0, "psnr_gap_db": -1.0},
                          {**base, "varied": "kl_per_step", "kl_per_step": 5.0, "real_over_kl": 1.5}])
    fig = plotting.overhead_figure(sweep)
    omega_rates = fig.axes[0].get_lines()[0]
    assert omega_rates.get_xdata().tolist() == [3.0, 5.0] and omega_rates.get_ydata().tolist() == [1.0, 1.5]
    beam_rates = fig.axes[2].get_lines()[0]  # not averaged with the Omega = 5 row
    assert beam_rates.get_xdata().tolist() == [1, 10] and beam_rates.get_ydata().tolist() == [2.0, 1.0]


def test_a_missing_sweep_is_skipped_and_a_wrong_one_is_a_clear_error(tmp_path):
    assert plotting.read_sweep(tmp_path) is None
    with pytest.raises(ValueError, match="kl_per_step"):
        plotting.overhead_figure(pd.DataFrame({"x": [1]}))


def test_saving_the_same_figure_again_or_a_redrawn_one_writes_identical_bytes(tmp_path):
    # a re-run that changes no number leaves the committed figures as they were: no dates, no random SVG ids
    def drawn():
        return plotting.rd_figure(rd.classical_curves(lossy_rows()), rd.published_curves(), dataset="Kodak")

    fig = drawn()
    first = plotting.save_figure(fig, "kodak_rd", tmp_path / "a")
    again = plotting.save_figure(fig, "kodak_rd", tmp_path / "b")
    redrawn = plotting.save_figure(drawn(), "kodak_rd", tmp_path / "c")
    for a, b, c in zip(first, again, redrawn):
        assert a.read_bytes() == b.read_bytes() == c.read_bytes(), f"{a.suffix} differs between saves"
    pdf, svg = first[1].read_bytes(), first[2].read_text()
    assert b"/CreationDate" not in pdf and "<dc:date>" not in svg
    assert matplotlib.rcParams["svg.hashsalt"] is None  # the fixed salt is scoped to save_figure, not left behind
