"""The irec compress / decompress / info commands, run through irec.__main__.main as a user would."""

from __future__ import annotations

import dataclasses

import json
import re

import numpy as np
import pytest
from PIL import Image

from irec import paths
from irec.__main__ import main
from irec.data import read_image, write_png
from tests.models import save_small


@pytest.fixture
def setup(tmp_path, monkeypatch, shared_data):
    """A private cache, no shipped models, a smoke model file and a CIFAR-10 PNG."""
    monkeypatch.setenv("IREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "SHIPPED_MODELS", tmp_path / "shipped")
    model_path = tmp_path / "smoke.pt"
    fingerprint = save_small("lossless", model_path, seed=0)
    image = np.load(shared_data / "cifar10" / "cifar10_test.npz")["images"][3]
    write_png(tmp_path / "in.png", image)
    return tmp_path, model_path, fingerprint, image


def test_compress_then_decompress_with_a_model_path_gives_the_image_back(setup, capsys):
    tmp, model_path, _, image = setup
    assert main(["compress", "--model", str(model_path), str(tmp / "in.png"), str(tmp / "x.irec")]) == 0
    out = capsys.readouterr().out
    assert "real" in out and "ideal" in out and "bpd" in out
    for words in ("header", "level 0", "pixels", "tail", "-ELBO", "encoded in"):
        assert words in out
    assert main(["decompress", "--model", str(model_path), str(tmp / "x.irec"), str(tmp / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)


def test_compress_reports_a_lossy_file_as_it_reports_a_lossless_one_and_decompress_gives_its_image(setup, capsys):
    from irec.codecs import make_codec

    tmp = setup[0]
    save_small("lossy", tmp / "lossy.pt")
    options = ["--n-beams", "2", "--kl-per-step", "3", "--refine-steps", "0"]
    assert main(["compress", "--model", str(tmp / "lossy.pt"), *options, str(tmp / "in.png"), str(tmp / "y.irec")]) == 0
    out = capsys.readouterr().out
    for words in ("real", "bpp", "ideal", "header", "z2", "z1", "tail", "PSNR", "encoded in"):
        assert words in out
    assert "pixels" not in out and "bpd" not in out  # no pixel stream in a lossy file; its rate is per pixel
    assert main(["decompress", "--model", str(tmp / "lossy.pt"), str(tmp / "y.irec"), str(tmp / "out.png")]) == 0
    codec, _ = make_codec(str(tmp / "lossy.pt"), {"n_beams": 2, "kl_per_step": 3.0}, refine_steps=0)
    np.testing.assert_array_equal(read_image(tmp / "out.png"), codec.encode(read_image(tmp / "in.png")).image)


def test_decompress_finds_a_cached_model_by_the_files_fingerprint(setup):
    tmp, model_path, _, image = setup
    cached = paths.cache_root() / "models" / "tiny.pt"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(model_path.read_bytes())
    options = ["--n-beams", "3", "--seed", "5"]
    assert main(["compress", "--model", "tiny", *options, str(tmp / "in.png"), str(tmp / "x.irec")]) == 0
    assert main(["decompress", str(tmp / "x.irec"), str(tmp / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)


def test_info_describes_a_file_and_lists_the_cached_models(setup, capsys):
    tmp, model_path, fingerprint, _ = setup
    main(["compress", "--model", str(model_path), "--block-size", "512", str(tmp / "in.png"), str(tmp / "x.irec")])
    capsys.readouterr()
    assert main(["info", str(tmp / "x.irec")]) == 0
    out = capsys.readouterr().out
    assert "lossless" in out and fingerprint[:8] in out and "512" in out and "32" in out
    assert f"bytes: {(tmp / 'x.irec').stat().st_size}" in out
    assert main(["info"]) == 0
    assert "no shipped or cached models" in capsys.readouterr().out
    (paths.cache_root() / "models").mkdir(parents=True, exist_ok=True)
    (paths.cache_root() / "models" / "tiny.pt").write_bytes(model_path.read_bytes())
    assert main(["info"]) == 0
    assert "tiny" in capsys.readouterr().out


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "16-bit", "missing", "not an image"])
def test_bad_png_inputs_exit_with_code_2_and_a_one_line_message(setup, capsys, kind):
    tmp, model_path, _, _ = setup
    bad = tmp / f"{kind}.png"
    if kind == "grayscale":
        _save(bad, np.zeros((8, 8), np.uint8))
    elif kind == "rgba":
        _save(bad, np.zeros((8, 8, 4), np.uint8))
    elif kind == "16-bit":
        _save(bad, np.full((8, 8), 40000, np.uint16))
    elif kind == "not an image":
        bad.write_bytes(b"hello")
    assert main(["compress", "--model", str(model_path), str(bad), str(tmp / "x.irec")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irec compress: error:") and "\n" not in err
    assert not (tmp / "x.irec").exists()


@pytest.mark.parametrize("problem", ["corrupt", "wrong model", "missing", "unknown model"])
def test_bad_irec_inputs_exit_with_code_2_and_a_clear_message(setup, capsys, problem):
    tmp, model_path, _, _ = setup
    main(["compress", "--model", str(model_path), str(tmp / "in.png"), str(tmp / "x.irec")])
    args = ["decompress", "--model", str(model_path), str(tmp / "x.irec"), str(tmp / "out.png")]
    expected = {"corrupt": "checksum", "wrong model": "fingerprint", "missing": "no such file",
                "unknown model": "no shipped or cached model"}[problem]
    if problem == "corrupt":
        data = bytearray((tmp / "x.irec").read_bytes())
        data[20] ^= 1
        (tmp / "x.irec").write_bytes(bytes(data))
    elif problem == "wrong model":
        save_small("lossless", tmp / "other.pt", seed=1)
        args[2] = str(tmp / "other.pt")
    elif problem == "missing":
        args[3] = str(tmp / "absent.irec")
    else:
        args = ["decompress", str(tmp / "x.irec"), str(tmp / "out.png")]
    capsys.readouterr()
    assert main(args) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp / "out.png").exists()


def test_without_imagecodecs_training_still_runs_and_baselines_names_what_is_missing():
    import subprocess
    import sys

    from irec.paths import REPO

    script = (
        "import sys; sys.modules['imagecodecs'] = None\n"  # as on a machine where it is not installed
        "from irec.__main__ import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "sys.exit(main(['baselines', '--dataset', 'kodak']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "resumably" in done.stdout  # irec train --help
    assert done.returncode == 2
    assert "cannot import irec.evaluation.baselines" in done.stderr and "imagecodecs" in done.stderr


def test_adaptive_blocks_from_the_command_line_decode_and_info_lists_each_levels_block_size(setup, capsys):
    tmp, model_path, _, image = setup
    options = ["--block-size", "600", "--steps-per-block", "0.2", "--kl-per-step", "3"]
    assert main(["compress", "--model", str(model_path), *options, str(tmp / "in.png"), str(tmp / "a.irec")]) == 0
    assert main(["decompress", "--model", str(model_path), str(tmp / "a.irec"), str(tmp / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)
    capsys.readouterr()
    assert main(["info", str(tmp / "a.irec")]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if "block_size" in s)
    sizes = [int(n) for n in line.split(":")[1].split(",")]
    assert len(sizes) == 2 and max(sizes) < 600  # one per level (the smoke model has two), below the cap


def test_refine_steps_on_a_lossless_model_refines_its_posteriors_and_the_file_decodes_with_the_plain_command(setup):
    from irec.codecs import make_codec
    from irec.settings import LOSSLESS_REFINEMENT

    tmp, model_path, _, image = setup
    codec, _ = make_codec(str(model_path), refine_steps=2)
    assert codec.refinement == dataclasses.replace(LOSSLESS_REFINEMENT, steps=2)
    assert make_codec(str(model_path))[0].refinement.steps == 0  # off by default
    args = ["compress", "--model", str(model_path), "--refine-steps", "2", str(tmp / "in.png"), str(tmp / "r.irec")]
    assert main(args) == 0
    assert main(["decompress", "--model", str(model_path), str(tmp / "r.irec"), str(tmp / "r.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "r.png"), image)


def test_a_lossy_model_gets_the_low_rate_setting_beside_its_default_unless_a_coder_option_fixes_one(setup):
    from irec.codecs import make_codec
    from irec.settings import LOSSY_DEFAULT, LOSSY_LOW_RATE

    tmp = setup[0]
    save_small("lossy", tmp / "lossy.pt")
    codec, _ = make_codec(str(tmp / "lossy.pt"))
    assert (codec.params, codec.low_rate_params) == (LOSSY_DEFAULT, LOSSY_LOW_RATE)
    codec, _ = make_codec(str(tmp / "lossy.pt"), {"n_beams": 7}, refine_steps=0)
    assert (codec.params, codec.low_rate_params) == (LOSSY_DEFAULT.with_(n_beams=7), None)
    assert codec.refinement.steps == 0


@pytest.mark.parametrize("failure", ["other pixels", "does not decode"])
def test_compress_refuses_a_file_that_does_not_decode_to_its_image_and_writes_nothing(setup, capsys, monkeypatch,
                                                                                      failure):
    from irec.codecs.container import CorruptStreamError
    from irec.codecs.lossless import LosslessCodec

    def broken(self, data):
        if failure == "does not decode":
            raise CorruptStreamError("the coded payload holds more symbols than the image needs")
        return np.zeros((32, 32, 3), np.uint8)

    tmp, model_path, _, _ = setup
    monkeypatch.setattr(LosslessCodec, "decompress", broken)
    assert main(["compress", "--model", str(model_path), str(tmp / "in.png"), str(tmp / "x.irec")]) == 2
    assert "nothing was written" in capsys.readouterr().err
    assert not (tmp / "x.irec").exists()
    assert main(["compress", "--no-verify", "--model", str(model_path), str(tmp / "in.png"), str(tmp / "x.irec")]) == 0
    assert "not verified" in capsys.readouterr().out and (tmp / "x.irec").exists()


def test_a_folder_is_coded_into_a_folder_by_two_workers_as_one_worker_codes_it(setup, capsys):
    tmp, model_path, _, image = setup
    photos = tmp / "photos"
    images = {f"p{i}": np.roll(image, 5 * i, axis=1) for i in range(3)}
    for name, pixels in images.items():
        write_png(photos / f"{name}.png", pixels)
    options = ["--model", str(model_path), "--n-beams", "3"]
    assert main(["compress", *options, "--workers", "2", str(photos), str(tmp / "coded")]) == 0
    out = capsys.readouterr().out
    assert out.count(".irec: ") == 3 and all(len(line.split(": ")[-1]) <= 80 for line in out.splitlines())
    total = sum(p.stat().st_size for p in (tmp / "coded").glob("*.irec"))
    assert out.splitlines()[-1].startswith(f"3 files coded: {total:,} bytes, mean ")
    files = sorted(map(str, photos.glob("*.png")))  # several files rather than a folder
    assert main(["compress", *options, "--workers", "1", *files, str(tmp / "one")]) == 0
    for name in images:  # the same files whatever the count, one per image with its stem
        assert (tmp / "coded" / f"{name}.irec").read_bytes() == (tmp / "one" / f"{name}.irec").read_bytes()
    decode = ["decompress", "--model", str(model_path)]  # (workers do not see this test's patched model folders)
    assert main([*decode, "--workers", "2", str(tmp / "coded"), str(tmp / "back")]) == 0
    out = capsys.readouterr().out
    assert out.count(", decoded in ") == 3 and out.splitlines()[-1].startswith(f"3 files decoded into {tmp / 'back'}")
    for name, pixels in images.items():
        np.testing.assert_array_equal(read_image(tmp / "back" / f"{name}.png"), pixels)
    (tmp / "coded" / "p1.irec").write_bytes(b"not a file")  # one bad file fails the run, not the others
    assert main([*decode, "--workers", "1", str(tmp / "coded"), str(tmp / "b2")]) == 1
    assert "FAILED" in capsys.readouterr().out and (tmp / "b2" / "p2.png").is_file()


@pytest.mark.parametrize("kind", ["lossless", "lossy"])
def test_compress_reports_real_and_ideal_rate_for_both_kinds(setup, capsys, kind):
    tmp, model_path, _, _ = setup
    if kind == "lossy":
        model_path = tmp / "lossy.pt"
        save_small("lossy", model_path)
    options = ["--n-beams", "2", "--kl-per-step", "3"] + (["--refine-steps", "0"] if kind == "lossy" else [])
    assert main(["compress", "--model", str(model_path), *options, str(tmp / "in.png"), str(tmp / "x.irec")]) == 0
    lines = capsys.readouterr().out.splitlines()
    size = (tmp / "x.irec").stat().st_size
    assert lines[0] == f"{tmp / 'x.irec'}: {size:,} bytes, {kind} 32x32 image from {tmp / 'in.png'}, model " \
                       f"{model_path.stem}"
    labelled = []  # each label's line, with the lines that continue it (indented past the label)
    for line in lines[1:]:
        if line.startswith(" " * 4):
            labelled[-1] += " " + line.strip()
        else:
            labelled.append(line.strip())
    labels = [line.split(":")[0].strip() for line in labelled]
    assert labels == ["rate", "parts", "quality", "time"]  # the same layout for both kinds
    unit = "bpd" if kind == "lossless" else "bpp"
    real = 8 * size / (32 * 32 * (3 if kind == "lossless" else 1))
    rate, parts, quality, time = labelled
    assert rate.split(":", 1)[1].strip().startswith(f"real {real:.4f} {unit}, ideal ")
    assert f"{unit} (KL + -log2 p(x|z))" in rate if kind == "lossless" else f"{unit} (KL)" in rate
    assert ("-ELBO" in rate) == (kind == "lossless")
    assert re.search(r"header \d+ / -,", parts) and re.search(r"tail \d+ / -$", parts)
    assert ("pixels" in parts) == (kind == "lossless") and ("PSNR" in quality) == (kind == "lossy")
    assert "encoded in" in time and "verified" in time
    assert all(len(line) <= 100 for line in lines[1:])  # (the first holds this test's long folder names)


def test_many_latent_levels_are_shown_as_one_latents_part_with_their_sums():
    from irec.cli.report import Compressed

    levels = {f"level {i}": 100.0 * (i + 1) for i in range(8)}
    done = Compressed(output="x.irec", source="x.png", kind="lossless", height=32, width=32, n_bytes=1000,
                      bits={"header": 192.0, **levels, "pixels": 4000.0, "tail": 8.0},
                      ideal_bits={**{k: v / 2 for k, v in levels.items()}, "pixels": 3900.0}, seconds=1.0,
                      verified=True)
    assert done.parts() == ["header 192 / -", "latents 3,600 / 1,800", "pixels 4,000 / 3,900", "tail 8 / -"]
    assert all(len(line) <= 100 for line in done.report().splitlines())


def test_decompress_says_what_it_wrote_and_how_long_it_took(setup, capsys):
    tmp, model_path, _, _ = setup
    main(["compress", "--model", str(model_path), str(tmp / "in.png"), str(tmp / "x.irec")])
    capsys.readouterr()
    assert main(["decompress", "--model", str(model_path), str(tmp / "x.irec"), str(tmp / "out.png")]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(rf"{re.escape(str(tmp / 'out.png'))}: 32x32 RGB image from {re.escape(str(tmp / 'x.irec'))} "
                        r"\(smoke\), decoded in \d+\.\d\d s\n", out)


def test_quiet_decompress_prints_nothing(setup, capsys):
    tmp, model_path, _, image = setup
    assert main(["compress", "-q", "--model", str(model_path), str(tmp / "in.png"), str(tmp / "x.irec")]) == 0
    assert main(["decompress", "-q", "--model", str(model_path), str(tmp / "x.irec"), str(tmp / "out.png")]) == 0
    assert capsys.readouterr() == ("", "")
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)


def _manifest(folder, model_path, fingerprint):
    """A shipped-models manifest with a lossless and a lossy entry whose figures carry a long measured_by text."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "smoke.pt").write_bytes(model_path.read_bytes())
    long = "notebook 05, final best-q, B100 N403 Omega6, adaptive blocks " * 6
    entries = [
        {"name": "lossless-smoke", "file": "smoke.pt", "fingerprint": fingerprint, "kind": "lossless",
         "steps": 7937, "finetuned_from": None,
         "figures": {"cifar10_test_bpd": 4.959, "cifar10_test_negative_elbo_bpd": 4.521, "measured_by": long}},
        {"name": "lossy-smoke-with-a-rather-long-name", "file": "smoke.pt", "fingerprint": "ab" * 32,
         "kind": "lossy", "steps": 10481, "finetuned_from": {"steps": 24986},
         "figures": {"kodak_bpp": 0.4123, "kodak_psnr_db": 30.4, "kodak_ms_ssim_db": 14.1, "measured_by": long}},
    ]
    (folder / "manifest.json").write_text(json.dumps({"models": entries}))
    return long


def test_info_prints_a_table_with_a_header_and_short_lines(setup, capsys):
    tmp, model_path, fingerprint, _ = setup
    long = _manifest(tmp / "shipped", model_path, fingerprint)
    (paths.cache_root() / "models").mkdir(parents=True, exist_ok=True)
    (paths.cache_root() / "models" / "tiny.pt").write_bytes(model_path.read_bytes())
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SOURCE", "FINGERPRINT", "STEPS", "MEASURED"]
    assert [line.split()[0] for line in lines[1:]] == ["lossless-smoke", "lossy-smoke-with-a-rather-long-name", "tiny"]
    assert all(len(line) <= 120 for line in lines) and long[:20] not in "\n".join(lines)
    for column in ("KIND", "SOURCE", "FINGERPRINT", "STEPS", "MEASURED"):  # aligned under their titles
        at = lines[0].index(column)
        assert all(line[at - 2:at] == "  " and line[at] != " " for line in lines[1:])
    lossless, lossy, cached = lines[1:]
    assert "shipped" in lossless and fingerprint[:8] in lossless and "CIFAR-10 4.959 bpd (-ELBO 4.521)" in lossless
    assert "24986+10481" in lossy and "Kodak 0.4123 bpp, PSNR 30.4 dB" in lossy
    assert "cached" in cached and fingerprint[:8] in cached


def test_info_with_a_models_name_shows_its_whole_entry_readably(setup, capsys):
    tmp, model_path, fingerprint, _ = setup
    long = _manifest(tmp / "shipped", model_path, fingerprint)
    assert main(["info", "lossy-smoke-with-a-rather-long-name"]) == 0
    out = capsys.readouterr().out
    assert "kodak_psnr_db:" in out and "30.4" in out and " ".join(out.split()).count(long.split(",")[0]) == 6
    assert all(len(line) <= 100 for line in out.splitlines())
    assert main(["info", "no-such-model"]) == 2
    assert "no such file or model" in capsys.readouterr().err


def test_each_commands_help_explains_its_output_and_flags(capsys):
    for command, words in (("compress", ("ideal", "--quiet", "--no-verify", "--workers", "PSNR")),
                           ("decompress", ("fingerprint", "--quiet", "decode time")),
                           ("info", ("fingerprint", "Kodak bpp", "header"))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert all(word in out for word in words), (command, words)
