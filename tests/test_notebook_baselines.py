"""notebooks/03_baselines.ipynb: committed clean, parameterised, and it runs end to end on two tiny images."""

from __future__ import annotations

import ast

import nbformat
import pandas as pd
import papermill
import pytest

from irec.data import read_image, write_png
from irec.paths import NOTEBOOKS
from irec.evaluation.results import MEASURED, PUBLISHED

NOTEBOOK = NOTEBOOKS / "03_baselines.ipynb"


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_committed_without_outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_the_notebook_has_one_parameters_cell_right_after_its_header(notebook):
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1] and notebook.cells[0].cell_type == "markdown"
    for word in ("Purpose", "Inputs", "Outputs", "smoke", "cpu", "paper"):
        assert word in notebook.cells[0].source
    params = papermill.inspect_notebook(str(NOTEBOOK))
    assert {"dataset", "split", "limit", "codecs", "out_csv", "profile"} <= set(params)
    assert all(p["help"] for p in params.values())
    assert params["profile"]["default"] == '"cpu"' and params["dataset"]["default"] == '""'


def test_the_notebook_defines_no_functions_or_classes(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            tree = ast.parse(cell.source)
            assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]


def test_the_notebook_runs_on_two_tiny_images_and_shows_measured_beside_published(shared_data, tmp_path):
    folder = tmp_path / "kodak"  # named like the dataset so the summary finds the paper's Kodak column
    folder.mkdir()
    photo = read_image(shared_data / "kodak" / "kodim23.png")
    write_png(folder / "a.png", photo[:24, :40])
    write_png(folder / "b.png", photo[100:140, 200:232])
    out_csv = tmp_path / "out.csv"
    executed = papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3", progress_bar=False,
        parameters={"dataset": str(folder), "codecs": ["png", "jpeg"], "out_csv": str(out_csv), "profile": "smoke"},
    )
    rows = pd.read_csv(out_csv)
    assert sorted(rows["image"].unique()) == ["a", "b"]
    assert set(rows["codec"]) == {"png", "jpeg"} and rows[rows["lossless"]]["bit_exact"].all()
    last = executed.cells[-1].outputs[0]["data"]["text/plain"]
    assert MEASURED in last and PUBLISHED in last and "4.35" in last
