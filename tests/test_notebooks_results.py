"""notebooks/06_results_table.ipynb and 07_rd_plots.ipynb: committed clean, parameterised, and they run in the
smoke profile on a small baselines file made here from two crops of Kodak images."""

from __future__ import annotations

import ast

import nbformat
import papermill
import pytest

from irec.evaluation.baselines import run_baselines
from irec.codecs.classical import make_codecs
from irec.data import read_image
from irec.paths import NOTEBOOKS
from irec.evaluation.results import MEASURED, lossless_summary, read_rows

NAMES = ("06_results_table.ipynb", "07_rd_plots.ipynb")


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, shared_data):
    """results/baselines/kodak-smoke.csv as the smoke profile of notebook 03 writes it (2 crops, 3 codecs)."""
    root = tmp_path_factory.mktemp("results")
    images = [(name, read_image(shared_data / "kodak" / f"{name}.png")[100:276, 200:376])
              for name in ("kodim05", "kodim23")]
    run_baselines(images, make_codecs(["png", "jpegxl-lossless", "jpeg"]), dataset="kodak",
                  out=root / "baselines" / "kodak-smoke.csv", progress=False)
    return root


@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_is_committed_clean_with_one_parameters_cell_and_no_functions(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert notebook.cells[0].cell_type == "markdown"
    for word in ("Purpose", "Inputs", "Outputs", "smoke", "cpu", "paper"):
        assert word in notebook.cells[0].source
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            tree = ast.parse(cell.source)
            assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
    params = papermill.inspect_notebook(str(NOTEBOOKS / name))
    assert params["profile"]["default"] == '"cpu"' and params["results_dir"]["default"] == '""'
    assert all(p["help"] for p in params.values())


def run(name, tmp_path, **parameters):
    return papermill.execute_notebook(
        str(NOTEBOOKS / name), str(tmp_path / name), parameters={"profile": "smoke", **parameters},
        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)


def test_the_table_notebook_writes_the_smoke_table_from_the_smoke_results(smoke_results, tmp_path):
    executed = run(NAMES[0], tmp_path, results_dir=str(smoke_results), tables_dir=str(tmp_path / "tables"))
    table = (tmp_path / "tables" / "lossless_table-smoke.csv").read_text()
    png = lossless_summary(read_rows(smoke_results / "baselines" / "kodak-smoke.csv")).set_index("codec")
    assert f"PNG,not run yet,5.87,not run (dataset not available offline),6.39,{png.loc['png', MEASURED]:.3f},4.35" \
        in table
    assert "Profile: smoke" in table and "Kodak: 2 (baselines)" in table
    assert (tmp_path / "tables" / "lossless_table-smoke.tex").stat().st_size > 0
    assert "iREC" in executed.cells[-1].outputs[0]["data"]["text/markdown"]


def test_the_rd_notebook_draws_the_smoke_curves_beside_the_published_ones(smoke_results, tmp_path):
    figures = tmp_path / "figures"
    executed = run(NAMES[1], tmp_path, results_dir=str(smoke_results), figures_dir=str(figures))
    for stem in ("kodak_rd-smoke", "kodak_rd_per_image-smoke"):
        for suffix in (".png", ".pdf", ".svg"):
            assert (figures / f"{stem}{suffix}").stat().st_size > 0
    assert not list(figures.glob("coder_overhead*"))  # no sweep in the smoke results: skipped
    text = "".join(str(output) for cell in executed.cells for output in cell.get("outputs", []))
    assert "JPEG 4:2:0 (libjpeg-turbo)" in text and "BPG 4:4:4 (published)" in text and "image/png" in text
    assert "no results/bench/sweep.csv yet" in text
