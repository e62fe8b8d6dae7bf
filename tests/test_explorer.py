"""irec.explorer: run_once on both kinds of model, the settings checks, the app's callback, the notebook."""

from __future__ import annotations

import datetime
import html
import io

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from PIL import Image

from irec.data import load_images, read_image
from irec.explorer import ExplorerSettingsError, build_app, candidates_text, named_settings, run_once
from irec.paths import NOTEBOOKS
from irec.settings import CODER_SETTINGS, lossless_preset
from tests.models import save_small

NOTEBOOK = NOTEBOOKS / "08_explorer.ipynb"


@pytest.fixture(scope="module")
def lossless_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-rvae.pt"
    save_small("lossless", path, seed=0)  # seeded: an unseeded one sometimes leaves the search nothing to choose
    return path


@pytest.fixture(scope="module")
def lossy_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-vae2.pt"
    save_small("lossy", path, seed=0)
    return path


@pytest.fixture(scope="module")
def cifar_image(shared_data):
    return load_images("cifar10", limit=1)[0][1]


@pytest.fixture(scope="module")
def photo_crop(shared_data):
    return np.ascontiguousarray(read_image(shared_data / "kodak" / "kodim23.png")[100:164, 200:264])


def test_run_once_codes_a_cifar_image_losslessly_and_splits_the_file_into_real_bits_per_level(
        lossless_path, cifar_image):
    result = run_once(lossless_path, cifar_image, n_beams=2, extra_samples=1.2, kl_per_step=3.0)
    assert result.kind == "lossless" and result.unit == "bpd" and result.exact
    assert np.array_equal(result.reconstruction, cifar_image) and not result.error_map.any()
    assert len(result.real_bits) == len(result.ideal_bits) == lossless_preset("smoke").model.n_layers
    assert result.rate == pytest.approx(8 * result.n_bytes / cifar_image.size)
    table = result.bits_table().set_index("part")
    parts = table.drop("total")["real bits"].sum()
    assert parts == pytest.approx(table.loc["total", "real bits"])
    assert table.loc["total", "real bits"] == 8 * result.n_bytes
    ideal = sum(result.ideal_bits) + result.pixel_ideal_bits
    assert result.ideal_rate == pytest.approx(ideal / cifar_image.size)
    assert result.overhead_percent == pytest.approx(100 * (8 * result.n_bytes - ideal) / ideal)


def test_the_explorer_codes_at_the_codecs_own_kl_floor_which_it_has_no_control_for(lossless_path, lossy_path,
                                                                                     cifar_image, photo_crop):
    from irec.settings import LOSSLESS_DEFAULT, LOSSY_DEFAULT

    lossless = run_once(lossless_path, cifar_image, n_beams=2, extra_samples=1.2, kl_per_step=3.0)
    lossy = run_once(lossy_path, photo_crop, n_beams=3, extra_samples=1.0, kl_per_step=3.0)
    assert lossless.params.ignore_kl_below == LOSSLESS_DEFAULT.ignore_kl_below > 0
    assert lossy.params.ignore_kl_below == LOSSY_DEFAULT.ignore_kl_below


def test_run_once_codes_a_photo_crop_lossily_with_bpp_psnr_and_an_error_map(lossy_path, photo_crop):
    result = run_once(lossy_path, photo_crop, n_beams=3, extra_samples=1.0, kl_per_step=3.0)
    assert result.kind == "lossy" and result.unit == "bpp" and result.exact
    assert result.level_names == ("z2", "z1") and result.pixel_bits is None and result.pixel_ideal_bits is None
    assert result.rate == pytest.approx(8 * result.n_bytes / (64 * 64))
    assert sum(result.real_bits) + result.framing_bits == pytest.approx(8 * result.n_bytes)
    assert result.reconstruction.shape == photo_crop.shape and result.reconstruction.dtype == np.uint8
    difference = np.abs(result.reconstruction.astype(float) - photo_crop.astype(float)).mean(axis=2)
    assert np.allclose(result.error_map, difference) and result.error_map.any()
    mse = np.mean((result.reconstruction.astype(float) - photo_crop.astype(float)) ** 2)
    assert result.psnr == pytest.approx(10 * np.log10(255**2 / mse))
    assert np.isnan(result.ms_ssim)  # 64 pixels is too small for five scales


def test_changing_the_number_of_beams_changes_the_bits(lossless_path, cifar_image):
    # Omega = 1 nat gives the tiny model's top level several steps, so the search has beams to choose between
    one = run_once(lossless_path, cifar_image, n_beams=1, extra_samples=1.5, kl_per_step=1.0)
    eight = run_once(lossless_path, cifar_image, n_beams=8, extra_samples=1.5, kl_per_step=1.0)
    assert one.params.beams == 1 and eight.params.beams == 8
    assert one.ideal_bits[0] == eight.ideal_bits[0]  # the top level's KL does not depend on the search
    assert one.ideal_bits[1] != eight.ideal_bits[1] and one.pixel_ideal_bits != eight.pixel_ideal_bits


def test_changing_omega_changes_the_real_bits_per_level(lossy_path, photo_crop):
    small = run_once(lossy_path, photo_crop, n_beams=3, extra_samples=1.0, kl_per_step=2.0)
    large = run_once(lossy_path, photo_crop, n_beams=3, extra_samples=1.0, kl_per_step=5.0)
    assert small.params.n_candidates == 7 and large.params.n_candidates == 148
    assert small.real_bits != large.real_bits


def test_fewer_than_two_candidates_per_step_gives_a_message_naming_n(lossy_path, photo_crop):
    assert "= 1 candidates" in candidates_text(0.2, 1.0) and "N ≥ 2" in candidates_text(0.2, 1.0)
    assert "too many" in candidates_text(3.0, 10.0)
    assert "too" not in candidates_text(1.2, 3.0) and "= 36 candidates" in candidates_text(1.2, 3.0)
    with pytest.raises(ExplorerSettingsError, match="raise 1\\+eps or Omega"):
        run_once(lossy_path, photo_crop, n_beams=3, extra_samples=0.2, kl_per_step=1.0)
    with pytest.raises(ExplorerSettingsError, match="unknown sampler 'pfr'"):
        run_once(lossy_path, photo_crop, n_beams=3, extra_samples=1.0, kl_per_step=3.0, sampler="pfr")


def test_the_encode_button_draws_the_bits_per_level_and_the_image_comparison(
        lossless_path, lossy_path, cifar_image, photo_crop):
    app = build_app({"tiny lossy": str(lossy_path), "tiny lossless": str(lossless_path)},
                    {"photo": photo_crop, "cifar": cifar_image})
    app.n_beams.value = 2
    app.encode_button.click()
    assert "irec-result" in app.result._dom_classes and "irec-bits-chart" in app.bits_chart._dom_classes
    assert "real bpp" in app.result.value and app.message.value == ""
    for image in (app.bits_chart, app.comparison):
        assert image.value[:8] == b"\x89PNG\r\n\x1a\n" and image.layout.display != "none"
    assert app.progress.value == app.progress.max and app.progress.description == "done"
    assert app.last_result.kind == "lossy" and app.last_result.params.n_beams == 2
    app.model.value, app.image.value = "tiny lossless", "cifar"
    app.encode_button.click()
    assert "real bpd" in app.result.value and app.last_result.exact


def test_choosing_a_named_setting_moves_the_sliders_and_the_block_settings_reach_the_coder(lossy_path, photo_crop):
    from irec.settings import LOSSY_DEFAULT

    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop})
    label = next(name for name in app.start_from.options if name.startswith("irec-lossy:"))
    app.start_from.value = label
    assert (app.n_beams.value, app.extra_samples.value, app.kl_per_step.value, app.block_size.value,
            app.steps_per_block.value) == (LOSSY_DEFAULT.n_beams, LOSSY_DEFAULT.extra_samples,
                                           LOSSY_DEFAULT.kl_per_step, LOSSY_DEFAULT.block_size,
                                           LOSSY_DEFAULT.steps_per_block)
    app.n_beams.value, app.block_size.value, app.steps_per_block.value = 2, 128, 0.0
    result = app.encode()
    assert result.params.block_size == 128 and result.params.n_candidates == LOSSY_DEFAULT.n_candidates
    assert result.params.n_beams == 2 and result.params.steps_per_block == 0.0 and result.exact
    app.steps_per_block.value = 5.0
    assert app.encode().params.steps_per_block == 5.0


def test_the_candidate_line_follows_the_sliders_and_invalid_settings_show_a_message_not_a_traceback(
        lossy_path, photo_crop):
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop})
    assert "= 20 candidates" in app.candidates.value
    app.extra_samples.value, app.kl_per_step.value = 0.2, 1.0
    assert "too few" in app.candidates.value
    assert app.encode() is None
    assert "Cannot encode" in app.message.value and "N ≥ 2" in app.message.value and app.result.value == ""
    assert app.progress.description == "failed"


def test_a_missing_model_file_gives_a_message(tmp_path, photo_crop):
    app = build_app({"gone": str(tmp_path / "gone.pt")}, {"photo": photo_crop})
    assert app.encode() is None and "no model file or model named" in app.message.value


def test_an_uploaded_file_becomes_the_chosen_image_and_a_broken_one_a_message(lossy_path, photo_crop):
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop})
    buffer = io.BytesIO()
    Image.fromarray(photo_crop[:40, :48]).save(buffer, format="PNG")
    when = datetime.datetime.now(datetime.UTC)
    app.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(buffer.getvalue()),
                         "content": memoryview(buffer.getvalue()), "last_modified": when},)
    assert app.image.value == "upload: mine.png" and app.images["upload: mine.png"].shape == (40, 48, 3)
    app.upload.value = ({"name": "bad.png", "type": "image/png", "size": 3, "content": memoryview(b"abc"),
                         "last_modified": when},)
    assert "bad.png" in app.message.value and app.image.value == "upload: mine.png"


def test_the_notebook_is_clean_and_presses_encode_once_under_papermill(lossless_path, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(c.outputs == [] for c in notebook.cells if c.cell_type == "code")
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1] and "Purpose" in notebook.cells[0].source
    params = papermill.inspect_notebook(str(NOTEBOOK))
    assert params["profile"]["default"] == '"cpu"' and params["auto_run"]["default"] == "True"
    assert params["setting"]["default"] == '"paper-lossless"' and params["n_beams"]["default"] == "None"
    assert {"model_paths", "n_beams", "extra_samples", "kl_per_step", "sampler", "n_cifar", "n_kodak"} <= set(params)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "build_app(models, images, setting=setting" in code and "app.n_beams.value" not in code
    assert all(p["help"] for p in params.values())  # every parameter parsed, with its comment
    executed = papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3", progress_bar=False,
        parameters={"profile": "smoke", "model_paths": [str(lossless_path)], "n_cifar": 1, "n_kodak": 0,
                    "n_beams": 2},
    )
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                     for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "real bpd" in text and "exact" in text


def test_without_any_model_the_app_says_what_to_do_instead_of_failing():
    from irec.explorer import NO_MODELS, build_app

    app = build_app({}, {"grey": np.full((32, 32, 3), 128, np.uint8)})
    assert app.encode_button.disabled and "no models to explore yet" in app.message.value
    assert app.encode() is None and NO_MODELS.split(":")[0] in app.message.value


def test_the_refinement_slider_reaches_the_lossy_encoder_and_the_summary_says_how_many_steps(lossy_path, photo_crop):
    from irec.settings import DEFAULT_REFINEMENT

    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop})
    app.n_beams.value = 2
    assert app.refine_steps.value == DEFAULT_REFINEMENT.steps
    assert app.encode().summary()["refine steps"] == DEFAULT_REFINEMENT.steps
    app.refine_steps.value = 0
    result = app.encode()
    assert result.refine_steps == 0 and result.summary()["refine steps"] == 0 and result.exact


def test_the_named_settings_are_those_of_irec_settings_and_the_app_starts_from_the_one_it_is_given(photo_crop):
    assert list(named_settings().values()) == list(CODER_SETTINGS.values())
    assert [label.split(":")[0] for label in named_settings()] == list(CODER_SETTINGS)
    start = CODER_SETTINGS["irec-lossless"]
    app = build_app({}, {"photo": photo_crop}, setting="irec-lossless", n_beams=3, kl_per_step=None, refine_steps=0)
    assert app.start_from.value == "custom" and app.refine_steps.value == 0  # B 3 is not irec-lossless's
    assert (app.n_beams.value, app.extra_samples.value, app.kl_per_step.value, app.block_size.value,
            app.seed) == (3, start.extra_samples, start.kl_per_step, start.block_size, start.seed)
    paper = build_app({}, {"photo": photo_crop})  # the default start: the paper's lossy setting
    assert paper.start_from.value.startswith("paper-lossy:")  # untouched: still the named setting
    assert paper.n_beams.value == CODER_SETTINGS["paper-lossy"].n_beams
    with pytest.raises(ExplorerSettingsError, match="unknown setting 'best'"):
        build_app({}, {"photo": photo_crop}, setting="best")


def test_two_presses_give_two_history_rows_and_two_points_and_clear_and_export_work(lossy_path, photo_crop, tmp_path):
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop}, n_beams=2)
    app.history.export_path = str(tmp_path / "history.csv")
    assert app.history.plot.layout.display == "none" and "no presses yet" in app.history.table.value
    app.encode()
    app.n_beams.value = 4
    app.encode()
    frame = app.history.history.frame()
    assert list(frame["press"]) == [1, 2] and list(frame["B"]) == [2, 4] and list(frame["image"]) == ["photo"] * 2
    assert frame["rate"].notna().all() and frame["PSNR dB"].notna().all()
    assert app.history.table.value.count("<tr>") == 2 and "download the history as CSV" in app.history.table.value
    assert app.history.plot.value[:4] == b"\x89PNG" and app.history.plot.layout.display != "none"
    exported = pd.read_csv(app.history.export())
    assert list(exported["B"]) == [2, 4] and "history.csv" in app.history.note.value
    app.history.clear_button.click()
    assert app.history.history.frame().empty and app.history.plot.layout.display == "none"
    app.encode()
    assert list(app.history.history.frame()["press"]) == [1]


def test_a_failed_press_clears_the_previous_result_and_keeps_the_history(lossy_path, photo_crop):
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop}, n_beams=2)
    assert app.encode() is not None and app.result.value and app.bits_chart.layout.display != "none"
    app.extra_samples.value, app.kl_per_step.value = 0.2, 1.0
    assert app.encode() is None
    assert "Cannot encode" in app.message.value and app.result.value == "" and app.last_result is None
    assert app.bits_chart.layout.display == "none" and app.comparison.layout.display == "none"
    assert app.bits_chart.value == b"" and app.comparison.value == b""
    assert len(app.history.history.rows) == 1  # the history keeps the presses that were coded


def test_refine_steps_are_disabled_for_a_lossless_model_and_enabled_for_a_lossy_one(lossless_path, lossy_path,
                                                                                     cifar_image):
    app = build_app({"lossless": str(lossless_path), "lossy": str(lossy_path)}, {"cifar": cifar_image},
                    setting="paper-lossless", n_beams=2)
    assert app.refine_steps.disabled
    assert app.encode().refine_steps == 0
    app.model.value = "lossy"
    assert not app.refine_steps.disabled


def test_start_from_reads_custom_once_a_control_moves_off_the_setting_and_the_setting_again_when_chosen(photo_crop):
    app = build_app({}, {"photo": photo_crop}, setting="paper-lossless")
    label = app.start_from.value
    assert label.startswith("paper-lossless:")
    app.kl_per_step.value = 4.0
    assert app.start_from.value == "custom"
    app.start_from.value = label
    assert app.start_from.value == label and app.kl_per_step.value == 3.0
    app.sampler.value = "greedy"
    assert app.start_from.value == "custom" and app.n_beams.disabled  # greedy keeps one beam


def test_each_press_decodes_the_file_once_and_shows_the_times_the_user_waited(lossy_path, photo_crop, monkeypatch):
    import time

    from irec.codecs.lossy import LossyCodec

    calls, decompress = [], LossyCodec.decompress

    def slow_decompress(self, data):
        calls.append(len(data))
        time.sleep(0.3)
        return decompress(self, data)

    monkeypatch.setattr(LossyCodec, "decompress", slow_decompress)
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop}, n_beams=2)
    result = app.encode()
    assert len(calls) == 1 and result.decode_s >= 0.3 and result.encode_s > 0
    app.encode()
    assert len(calls) == 2


def test_the_b_slider_is_log_like_and_every_control_explains_itself_with_the_papers_symbol(photo_crop):
    from irec.explorer_panels import HELP

    app = build_app({}, {"photo": photo_crop})
    options = list(app.n_beams.options)
    assert options[:6] == [1, 2, 3, 4, 5, 6] and options[-1] == 200 and len(options) < 30
    assert all(b / a <= 1.6 for a, b in zip(options[2:], options[3:]))  # evenly spaced on a log scale, roughly
    symbols = {"n_beams": "B:", "extra_samples": "1+ε", "kl_per_step": "Ω: nats", "steps_per_block": "K_b"}
    assert all(symbol in HELP[key] for key, symbol in symbols.items())
    beside = {id(box.children[0]): box.children[1].value for box in _boxes(app)
              if len(getattr(box, "children", ())) == 2}
    for key, text in HELP.items():
        control = getattr(app, key)
        assert control.style.description_width == "initial"  # no cut labels
        assert html.escape(text) in beside[id(control)]  # its one-line explanation beside it
    start = build_app({}, {"photo": photo_crop}, n_beams=7)
    assert start.n_beams.value == 7 and 7 in start.n_beams.options


def _boxes(widget):
    for child in getattr(widget, "children", ()):
        yield child
        yield from _boxes(child)


def test_a_lossless_result_shows_bit_exact_and_a_lossy_error_map_starts_at_zero(lossless_path, lossy_path,
                                                                               cifar_image, photo_crop):
    from irec.explorer_figures import bits_png, comparison_png, error_scale

    lossless = run_once(lossless_path, cifar_image, n_beams=2, extra_samples=1.2, kl_per_step=3.0)
    lossy = run_once(lossy_path, photo_crop, n_beams=2, extra_samples=1.0, kl_per_step=3.0)
    assert error_scale(lossless) is None
    low, high = error_scale(lossy)
    assert low == 0 and high == pytest.approx(max(1.0, lossy.error_map.max()))
    for result, original in ((lossless, cifar_image), (lossy, photo_crop)):
        width, height = Image.open(io.BytesIO(comparison_png(original, result))).size
        assert width >= 3 * 256 and height >= 256  # large: every panel at least 256 pixels
        assert bits_png(result)[:4] == b"\x89PNG"


def test_a_sweep_of_omega_gives_one_row_per_value_the_gap_to_a_posterior_sample_and_a_plot(lossy_path, photo_crop):
    from irec.explorer import sweep_values

    assert sweep_values("B (beams)", 1, 100, 5) == [1, 3, 10, 32, 100]
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop}, n_beams=2)
    app.sweeper.parameter.value = "Omega (nats per step)"
    app.sweeper.start.value, app.sweeper.stop.value, app.sweeper.count.value = 2.0, 4.0, 3
    app.sweeper.button.click()
    frame = app.sweeper.last
    assert list(frame["value"]) == [2.0, 3.0, 4.0] and (frame["error"] == "").all()
    assert frame["gap dB"].notna().all() and frame["overhead %"].notna().all() and (frame["encode s"] > 0).all()
    assert app.sweeper.plot.value[:4] == b"\x89PNG" and app.sweeper.progress.description == "done"
    app.sweeper.start.value = 5.0  # from > to: a message, no stale plot
    assert app.sweeper.sweep() is None and "Cannot sweep" in app.sweeper.table.value
    assert app.sweeper.plot.layout.display == "none"


def test_references_add_the_models_and_the_classical_codecs_on_the_image_to_the_plot_once(lossy_path, photo_crop):
    app = build_app({"tiny lossy": str(lossy_path)}, {"photo": photo_crop}, n_beams=2)
    app.encode()
    found = app.history.add_references()
    assert {"JPEG 4:2:0 (libjpeg-turbo) · photo", "WebP · photo", "iREC models, these settings · photo"} <= set(
        found["label"]) and (found["kind"] == "lossy").all() and found["PSNR dB"].notna().all()
    assert app.references() is app.references()  # cached per image and settings
    assert app.history.plot.value[:4] == b"\x89PNG" and "references" in app.history.note.value
    app.history.clear()
    assert app.history.references is None and app.history.plot.layout.display == "none"
