"""irec.evaluation.results: safe CSV appends, the documented schema, the published table and the summaries built on them."""

from __future__ import annotations

import math
import re
import threading

import pandas as pd
import pytest

from irec.paths import REPO
from irec.evaluation.results import (
    COLUMNS, MEASURED, PUBLISHED, PUBLISHED_LOSSLESS, ResultsFormatError, load_published_lossless,
    lossless_summary, rd_summary, read_rows, write_rows,
)


def _row(**overrides):
    row = {"dataset": "kodak", "image": "kodim01", "codec": "png", "codec_label": "PNG", "lossless": True,
           "bpd": 4.5, "bit_exact": True, "params": {"level": 9}, "psnr_db": math.inf, "ms_ssim": math.nan}
    row.update(overrides)
    return row


def test_write_rows_creates_the_file_with_schema_columns_first_and_reads_back_exact_values(tmp_path):
    path = write_rows(tmp_path / "sub" / "r.csv", [_row(bpd=0.1 + 0.2, extra="x")])
    text = path.read_text().splitlines()
    assert text[0].split(",")[:4] == ["dataset", "image", "codec", "codec_label"]
    assert text[0].split(",")[-1] == "extra"
    df = read_rows(path)
    assert df["bpd"][0] == 0.1 + 0.2  # full float precision
    assert df["psnr_db"][0] == math.inf and math.isnan(df["ms_ssim"][0])
    assert df["params"][0] == '{"level": 9}' and bool(df["lossless"][0]) is True


def test_appending_rows_keeps_one_header_and_the_old_rows(tmp_path):
    path = tmp_path / "r.csv"
    write_rows(path, [_row(image="a")])
    write_rows(path, [_row(image="b"), _row(image="c")])
    assert path.read_text().count("dataset,") == 1
    assert list(read_rows(path)["image"]) == ["a", "b", "c"]


def test_rows_with_a_new_column_widen_the_header_without_losing_rows(tmp_path):
    path = tmp_path / "r.csv"
    write_rows(path, [_row(image="a")])
    write_rows(path, [_row(image="b", encode_s=0.5)])
    df = read_rows(path)
    assert list(df["image"]) == ["a", "b"]
    assert math.isnan(df["encode_s"][0]) and df["encode_s"][1] == 0.5
    assert list(df.columns).index("encode_s") < list(df.columns).index("bit_exact")  # schema order kept


def test_concurrent_writers_do_not_lose_or_interleave_rows(tmp_path):
    path = tmp_path / "r.csv"

    def writer(k):
        for i in range(15):
            write_rows(path, [_row(image=f"{k}-{i}", **({"encode_s": 1.0} if i == 7 else {}))])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    df = read_rows(path)
    assert len(df) == 60 and df["image"].nunique() == 60
    assert (df["bpd"] == 4.5).all()


def test_reading_a_missing_results_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="irec baselines"):
        read_rows(tmp_path / "none.csv")


def test_results_readme_documents_every_column_of_the_schema():
    readme = (REPO / "results" / "README.md").read_text()
    for column in COLUMNS:
        assert re.search(rf"`{column}`", readme), f"{column} missing from results/README.md"


def test_the_published_lossless_table_has_a_provenance_header_and_the_papers_numbers():
    header = [line for line in PUBLISHED_LOSSLESS.read_text().splitlines() if line.startswith("#")]
    assert any("Table 1" in line for line in header) and any("bits per dimension" in line for line in header)
    assert any("single-image" in line or "single image" in line for line in header)
    table = load_published_lossless().set_index(["method", "variant"])
    assert table.loc[("PNG", "single_image"), ["cifar10", "imagenet32", "kodak"]].tolist() == [5.87, 6.39, 4.35]
    assert table.loc[("WebP", "single_image"), "kodak"] == 3.20
    assert table.loc[("FLIF", "single_image"), ["cifar10", "imagenet32", "kodak"]].tolist() == [4.19, 4.52, 2.90]
    assert table.loc[("LBB", "asymptotic"), "cifar10"] == 3.12
    assert table.loc[("HiLLoC", "single_image"), "kodak"] == 17.5
    assert table.loc[("RVAE ELBO", "elbo"), "kodak"] == 3.00
    assert table.loc[("iREC", "single_image"), "imagenet32"] == 4.91
    assert math.isnan(table.loc[("IDF", "single_image"), "kodak"])
    assert len(table) == 12


def test_lossless_summary_puts_the_measured_mean_beside_the_papers_number():
    df = pd.DataFrame([
        _row(image="a", bpd=4.0), _row(image="b", bpd=5.0),
        _row(codec="jpegxl-lossless", codec_label="JPEG XL lossless (FLIF stand-in)", bpd=3.0),
        _row(codec="jpeg2000-lossless", codec_label="JPEG 2000 lossless", bpd=3.5),
        _row(codec="jpeg", codec_label="JPEG", lossless=False, bpd=0.2, bit_exact=False),
        _row(dataset="/data/CIFAR-10", image="c", bpd=6.0),
    ])
    table = lossless_summary(df).set_index(["dataset", "codec"])
    assert table.loc[("kodak", "png"), MEASURED] == 4.5
    assert table.loc[("kodak", "png"), PUBLISHED] == 4.35
    assert table.loc[("kodak", "png"), "n_images"] == 2 and table.loc[("kodak", "png"), "all_bit_exact"]
    assert table.loc[("kodak", "jpegxl-lossless"), PUBLISHED] == 2.90
    assert table.loc[("kodak", "jpegxl-lossless"), "paper_method"] == "FLIF"
    assert math.isnan(table.loc[("kodak", "jpeg2000-lossless"), PUBLISHED])
    assert table.loc[("/data/CIFAR-10", "png"), PUBLISHED] == 5.87
    assert ("kodak", "jpeg") not in table.index


def test_lossless_summary_of_a_table_that_is_not_a_baselines_csv_raises():
    with pytest.raises(ResultsFormatError, match="lacks columns"):
        lossless_summary(pd.DataFrame({"x": [1]}))


def test_rd_summary_gives_one_mean_point_per_lossy_setting_sorted_by_rate():
    rows = [
        {**_row(image=i, codec="jpeg", lossless=False, bit_exact=False), "sweep_param": "level", "sweep_value": q,
         "bpp": bpp, "psnr_db": p, "ms_ssim": 0.9, "ms_ssim_db": 10.0, "encode_s": 0.1, "decode_s": 0.1}
        for i, q, bpp, p in [("a", 90, 2.0, 40.0), ("b", 90, 1.0, 38.0), ("a", 10, 0.2, 25.0), ("b", 10, 0.4, 27.0)]
    ]
    table = rd_summary(pd.DataFrame([*rows, _row()]))
    assert list(table["sweep_value"]) == [10, 90]
    assert table["bpp"].tolist() == pytest.approx([0.3, 1.5]) and table["psnr_db"].tolist() == [26.0, 39.0]
    assert (table["n_images"] == 2).all()


def test_lossless_results_written_with_the_old_names_are_read_with_the_schemas(tmp_path):
    from irec.evaluation.results import LEGACY_NAMES

    old = {"image": "cifar10-test-1", "codec": "irec", "file_bytes": 1704, "label": "iREC lossless",
           "negative_elbo_bpd": 3.98, "kl_per_block": 6.0}  # the names of the files written before the one schema
    write_rows(tmp_path / "cifar10.csv", [old])
    rows = read_rows(tmp_path / "cifar10.csv")
    assert {"n_bytes", "codec_label", "negative_elbo_bpd", "kl_per_step"} <= set(rows.columns)
    assert not {"file_bytes", "label", "kl_per_block"} & set(rows.columns)
    committed = pd.read_csv(REPO / "results" / "lossless" / "cifar10.csv", nrows=1).columns
    assert not set(LEGACY_NAMES) & set(committed), "the committed file is written with today's names"


def test_an_old_name_is_renamed_only_where_todays_name_is_absent(tmp_path):
    write_rows(tmp_path / "old.csv", [{"image": "a", "file_bytes": 10, "label": "iREC lossless", "elbo_bpd": 3.5}])
    write_rows(tmp_path / "both.csv", [{"image": "a", "label": "x", "codec_label": "PNG"}])
    old = read_rows(tmp_path / "old.csv")
    assert (old["n_bytes"].tolist(), old["codec_label"].tolist(), old["negative_elbo_bpd"].tolist()) == (
        [10], ["iREC lossless"], [3.5])
    both = read_rows(tmp_path / "both.csv")
    assert both["codec_label"].tolist() == ["PNG"] and both["label"].tolist() == ["x"]
