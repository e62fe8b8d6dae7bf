"""irec.evaluation.tables: the paper's lossless table from small result files, with the right cells, labels and wording."""

from __future__ import annotations

import pandas as pd
import pytest

from irec.evaluation import tables
from irec.evaluation.results import ResultsFormatError, write_rows

KODAK = "Kodak"


def lossless_rows(dataset: str, codec: str, label: str, bpds: list[float]) -> list[dict]:
    """Baseline rows as irec.evaluation.baselines writes them (only the columns the summary reads, plus a few)."""
    return [{"dataset": dataset, "split": "", "image": f"img{i}", "height": 8, "width": 8, "codec": codec,
             "codec_label": label, "lossless": True, "sweep_param": "", "sweep_value": "", "n_bytes": int(bpd * 24),
             "bpd": bpd, "bpp": 3 * bpd, "psnr_db": float("inf"), "bit_exact": True} for i, bpd in enumerate(bpds)]


@pytest.fixture
def results(tmp_path):
    """Kodak: PNG and JPEG XL lossless measured (no WebP), iREC run; CIFAR-10: PNG only, no iREC; no ImageNet32."""
    write_rows(tmp_path / "baselines" / "kodak.csv", [
        *lossless_rows("kodak", "png", "PNG", [4.0, 5.0]),
        *lossless_rows("kodak", "jpegxl-lossless", "JPEG XL lossless (FLIF stand-in)", [2.5, 3.0]),
    ])
    write_rows(tmp_path / "baselines" / "cifar10.csv", lossless_rows("cifar10", "png", "PNG", [6.0, 5.0, 7.0]))
    write_rows(tmp_path / "lossless" / "kodak.csv", [
        {"dataset": "kodak", "image": "img0", "model": "rvae-cpu", "bpd": 3.5, "negative_elbo_bpd": 3.25},
        {"dataset": "kodak", "image": "img1", "model": "rvae-cpu", "bpd": 3.75, "negative_elbo_bpd": 3.5},
    ])
    return tmp_path


def cell(table: tables.LosslessTable, method: str, dataset: str, kind: str) -> str:
    frame = table.cells.set_index("method")
    return frame.loc[method, tables.column(dataset, kind)]


def test_the_table_has_the_papers_rows_and_two_columns_per_dataset(results):
    table = tables.lossless_table(results, "cpu")
    assert table.cells["method"].tolist() == [
        "PNG", "WebP", "JPEG XL lossless (FLIF stand-in)", "IDF", "LBB", "BitSwap", "HiLLoC", "iREC",
        "ELBO of the RVAE"]
    assert table.cells.columns.tolist() == ["method"] + [
        f"{name}: {kind}" for name in ("CIFAR-10", "ImageNet32", "Kodak")
        for kind in ("measured here", "paper (published)")]


def test_measured_cells_are_means_of_the_result_files(results):
    table = tables.lossless_table(results, "cpu")
    assert cell(table, "PNG", KODAK, tables.MEASURED_HERE) == "4.500"
    assert cell(table, "JPEG XL lossless (FLIF stand-in)", KODAK, tables.MEASURED_HERE) == "2.750"
    assert cell(table, "PNG", "CIFAR-10", tables.MEASURED_HERE) == "6.000"
    assert cell(table, "iREC", KODAK, tables.MEASURED_HERE) == "3.625"
    assert cell(table, "ELBO of the RVAE", KODAK, tables.MEASURED_HERE) == "3.375"
    assert table.n_images == {"cifar10": {"baselines": 3}, "kodak": {"baselines": 2, "irec": 2}}
    assert table.models == ("rvae-cpu",)


def test_published_cells_come_from_the_paper_and_never_fill_a_measured_cell(results):
    table = tables.lossless_table(results, "cpu")
    assert cell(table, "PNG", KODAK, tables.PAPER) == "4.35"
    assert cell(table, "JPEG XL lossless (FLIF stand-in)", KODAK, tables.PAPER) == "2.90"  # the paper's FLIF
    assert cell(table, "LBB", "CIFAR-10", tables.PAPER) == "54.96 (3.12)"
    assert cell(table, "HiLLoC", KODAK, tables.PAPER) == "17.50 (3.00)"
    assert cell(table, "ELBO of the RVAE", "ImageNet32", tables.PAPER) == "[4.18]"
    assert cell(table, "IDF", KODAK, tables.PAPER) == tables.NOT_REPORTED
    measured = table.cells[[c for c in table.cells.columns if c.endswith(tables.MEASURED_HERE)]]
    published = table.cells[[c for c in table.cells.columns if c.endswith(tables.PAPER)]]
    assert not set(measured.to_numpy().ravel()) & (set(published.to_numpy().ravel()) - {tables.NOT_REPORTED})


def test_cells_without_a_measurement_say_why(results):
    table = tables.lossless_table(results, "cpu")
    assert cell(table, "WebP", KODAK, tables.MEASURED_HERE) == "not run yet"  # codec absent from the CSV
    assert cell(table, "iREC", "CIFAR-10", tables.MEASURED_HERE) == "not run yet"  # no lossless/cifar10.csv
    for method in ("PNG", "iREC", "ELBO of the RVAE"):
        assert cell(table, method, "ImageNet32", tables.MEASURED_HERE) == "not run (dataset not available offline)"
    for method in ("IDF", "LBB", "BitSwap", "HiLLoC"):
        for dataset in ("CIFAR-10", "ImageNet32", KODAK):
            assert cell(table, method, dataset, tables.MEASURED_HERE) == "published only"


def test_the_smoke_profile_reads_only_smoke_files(results):
    table = tables.lossless_table(results, "smoke")
    assert cell(table, "PNG", KODAK, tables.MEASURED_HERE) == "not run yet"
    write_rows(results / "baselines" / "kodak-smoke.csv", lossless_rows("kodak", "png", "PNG", [4.25]))
    table = tables.lossless_table(results, "smoke")
    assert cell(table, "PNG", KODAK, tables.MEASURED_HERE) == "4.250"


def test_an_irec_file_without_the_elbo_column_raises_a_clear_error(tmp_path):
    write_rows(tmp_path / "lossless" / "kodak.csv", [{"image": "a", "bpd": 3.0}])
    with pytest.raises(ResultsFormatError, match="negative_elbo_bpd"):
        tables.lossless_table(tmp_path, "cpu")


def test_a_file_that_names_the_elbo_column_elbo_bpd_as_before_is_still_read(tmp_path):
    write_rows(tmp_path / "lossless" / "cifar10.csv", [{"image": "a", "bpd": 4.0, "elbo_bpd": 3.5}])
    table = tables.lossless_table(tmp_path, "cpu")
    assert cell(table, "ELBO of the RVAE", "CIFAR-10", tables.MEASURED_HERE) == "3.500"
    assert cell(table, "iREC", "CIFAR-10", tables.MEASURED_HERE) == "4.000"


def test_the_table_is_written_as_csv_markdown_and_latex_with_its_provenance(results, tmp_path):
    table = tables.lossless_table(results, "cpu")
    paths = tables.write_table(table, tmp_path / "tables")
    assert {p.name for p in paths.values()} == {"lossless_table.csv", "lossless_table.md", "lossless_table.tex"}
    csv_text = paths["csv"].read_text()
    assert csv_text.startswith("# ") and "Profile: cpu" in csv_text and "rvae-cpu" in csv_text
    assert "Kodak: 2 (baselines), 2 (irec)" in csv_text and "Rows coded at git" in csv_text
    back = pd.read_csv(paths["csv"], comment="#", dtype=str)
    assert back.equals(table.cells.astype(str))
    markdown = paths["md"].read_text()
    assert "| PNG | 6.000 | 5.87 | not run (dataset not available offline) | 6.39 | 4.500 | 4.35 |" in markdown
    latex = paths["tex"].read_text()
    assert r"\multicolumn{2}{c}{ImageNet32}" in latex and r"\caption{" in latex and "4.500 & 4.35" in latex
    assert tables.write_table(tables.lossless_table(results, "smoke"), tmp_path / "t")["md"].name == \
        "lossless_table-smoke.md"


def test_the_committed_results_still_give_the_committed_lossless_table_to_the_byte():
    from irec.paths import RESULTS

    committed = (RESULTS / "tables" / "lossless_table.md").read_text()
    assert tables.to_markdown(tables.lossless_table(RESULTS, "cpu")) == committed  # the rows' commits, not the code's


def test_files_of_another_encoder_get_a_row_of_their_own_and_leave_the_irec_and_elbo_rows_to_the_default(tmp_path):
    default = {"n_beams": 100, "kl_per_step": 5.0, "extra_samples": 1.1, "block_size": 384, "refine_steps": 0}
    settings = [(default, (4.5, 4.7)), ({**default, "refine_steps": 100}, (4.2, 4.4)),
                ({**default, "n_beams": 150, "kl_per_step": 6.0, "refine_steps": 30}, (4.3, 4.5))]
    write_rows(tmp_path / "lossless" / "cifar10.csv", [
        {"image": f"a{i}", "model": "m", "bpd": bpd, "negative_elbo_bpd": 4.0 + bpd - bpds[0], **setting}
        for setting, bpds in settings for i, bpd in enumerate(bpds)])
    table = tables.lossless_table(tmp_path, "cpu")
    methods = table.cells["method"].tolist()
    refined = tables.encoder_label(100, 5.0, 1.1, 384, 100)
    stronger = tables.encoder_label(150, 6.0, 1.1, 384, 30)
    assert (refined, stronger) == ("iREC, encoder: q refined (100 steps)",
                                   "iREC, encoder: B = 150, Omega = 6, q refined (30 steps)")
    assert methods[methods.index("iREC"):] == ["iREC", stronger, refined, "ELBO of the RVAE"]
    assert tables.encoder_label(100, 5.0, 1.1, 384, 0) == "iREC"
    assert cell(table, "iREC", "CIFAR-10", tables.MEASURED_HERE) == "4.600"
    assert cell(table, "ELBO of the RVAE", "CIFAR-10", tables.MEASURED_HERE) == "4.100"
    assert cell(table, refined, "CIFAR-10", tables.MEASURED_HERE) == "4.300"
    assert cell(table, stronger, "CIFAR-10", tables.MEASURED_HERE) == "4.400"
    assert cell(table, refined, KODAK, tables.MEASURED_HERE) == "not run yet"
    assert cell(table, refined, "ImageNet32", tables.MEASURED_HERE) == "not run (dataset not available offline)"
    assert cell(table, refined, "CIFAR-10", tables.PAPER) == tables.NOT_REPORTED
    assert table.n_images == {"cifar10": {"irec": 2}} and "Adam steps" in table.caption()
    (tmp_path / "lossless" / "cifar10.csv").unlink()
    write_rows(tmp_path / "lossless" / "cifar10.csv", [{"image": "a", "model": "m", "bpd": 4.5,
                                                         "negative_elbo_bpd": 4.0, **default}])
    assert "Adam steps" not in tables.lossless_table(tmp_path, "cpu").caption()


def test_another_encoder_that_coded_fewer_images_says_how_many_of_the_irec_rows_images_its_mean_covers(tmp_path):
    default = {"n_beams": 100, "kl_per_step": 5.0, "extra_samples": 1.1, "block_size": 384, "refine_steps": 0}
    refined = {**default, "refine_steps": 30}
    write_rows(tmp_path / "lossless" / "kodak.csv", [
        *({"image": f"k{i}", "model": "m", "bpd": 4.0 + i, "negative_elbo_bpd": 3.5, **default} for i in range(3)),
        {"image": "k0", "model": "m", "bpd": 3.5, "negative_elbo_bpd": 3.5, **refined}])
    label = tables.encoder_label(100, 5.0, 1.1, 384, 30)
    assert cell(tables.lossless_table(tmp_path, "cpu"), label, KODAK, tables.MEASURED_HERE) == "3.500 (1 of 3 images)"
    write_rows(tmp_path / "lossless" / "kodak.csv", [  # appended: the run goes on and codes the other two
        {"image": f"k{i}", "model": "m", "bpd": 3.5, "negative_elbo_bpd": 3.5, **refined} for i in (1, 2)])
    assert cell(tables.lossless_table(tmp_path, "cpu"), label, KODAK, tables.MEASURED_HERE) == "3.500"
