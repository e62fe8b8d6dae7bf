"""``python -m irec.bench sweep`` (irec.bench.sweep): one coder parameter moved at a time, real files throughout."""

from __future__ import annotations

import numpy as np
import pandas as pd

from irec.bench.sweep import BASE, main, settings
from irec.data.images import write_png
from irec.settings import PAPER_LOSSY
from tests.models import save_small


def test_each_parameter_moves_alone_from_the_base_which_is_coded_once():
    pairs = settings(PAPER_LOSSY, {"n_beams": (1, 10), "kl_per_step": (2.0, 3.0, 4.0)})
    assert [v for v, _ in pairs] == [BASE, "n_beams", "kl_per_step", "kl_per_step"]
    assert [(p.n_beams, p.kl_per_step) for _, p in pairs] == [(10, 3.0), (1, 3.0), (10, 2.0), (10, 4.0)]


def test_the_sweep_writes_one_exactly_decoded_row_per_setting_and_image_with_its_overheads(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_png(tmp_path / "images" / f"{name}.png", rng.integers(0, 256, (80, 72, 3), dtype=np.uint8))
    model = tmp_path / "model.pt"
    save_small("lossy", model, seed=0)
    out = tmp_path / "sweep.csv"
    code = main(["--model", str(model), "--dataset", str(tmp_path / "images"), "--images", "2", "--crop", "64",
                 "--n-beams", "1,10", "--extra-samples", "1.0", "--kl-per-step", "2,3", "--block-size", "1000,384",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    rows = pd.read_csv(out)
    assert len(rows) == 4 * 2 and rows["exact"].all() and (rows["width"] == 64).all()
    assert sorted(rows["varied"].unique()) == sorted([BASE, "n_beams", "kl_per_step", "block_size"])
    assert sorted(rows["block_size"].unique()) == [384, 1000]
    assert np.allclose(rows["real_over_kl"], rows["bpp"] / rows["bpp_ideal"])
    assert (rows["refine_steps"] == 0).all() and np.allclose(rows["bpp_kl_coded"], rows["bpp_ideal"])  # coder alone
    assert np.allclose(rows["psnr_gap_db"], rows["psnr_db"] - rows["sample_psnr"])
    assert {"git_commit", "device"} <= set(rows.columns)
    assert "one parameter moved at a time" in capsys.readouterr().out
