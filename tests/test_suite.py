"""run_all.sh's runner: step selection, resuming, and failures that name the notebook and cell."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import papermill
import pytest

from irec.evaluation import suite
from irec.paths import NOTEBOOKS


def _notebook(path, *cells, parameters='profile: str = "cpu"  # profile'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_the_committed_notebooks_are_numbered_and_stripped_of_outputs():
    steps = suite.discover()
    assert [s.number for s in steps] == sorted(s.number for s in steps) and steps
    for step in steps:
        nb = nbformat.read(step.path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{step.path.name} needs exactly one parameters cell"
        assert "profile" in tagged[0].source
        assigned = {t.id for n in ast.parse(tagged[0].source).body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target])}
        parsed = papermill.inspect_notebook(str(step.path))  # a line with two '=' is not a parameter to papermill
        typed = all(p["help"] and p["inferred_type_name"] != "None" for p in parsed.values())
        assert set(parsed) == assigned and typed, (
            f"{step.path.name}: every parameter is one typed line with a comment, without '=' in it")
        assert nb.cells[0].cell_type == "markdown"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{step.path.name} has outputs"


def test_steps_are_selected_by_number_or_name_and_unknown_ones_are_named(tmp_path):
    for name in ("00_first", "03_third", "05_fifth"):
        _notebook(tmp_path / f"{name}.ipynb")
    steps = suite.discover(tmp_path)
    assert [s.label for s in suite.select(steps, ["fifth", "00"])] == ["00_first", "05_fifth"]
    assert [s.label for s in suite.select(steps, ["3"])] == ["03_third"]
    with pytest.raises(ValueError, match="unknown step 'nine'.*00_first, 03_third, 05_fifth"):
        suite.select(steps, ["nine"])


def test_a_finished_step_is_skipped_on_a_rerun_unless_forced(tmp_path, caplog):
    counter = tmp_path / "count.txt"
    code = f"from pathlib import Path\np = Path({str(counter)!r})\np.write_text(str(int(p.read_text() or 0) + 1) if p.exists() else '1')"
    _notebook(tmp_path / "01_count.ipynb", code)
    (step,) = suite.discover(tmp_path)
    out = tmp_path / "executed"
    assert suite.run_step(step, "smoke", False, out, force=False) is not None
    assert suite.run_step(step, "smoke", False, out, force=False) is None
    assert counter.read_text() == "1"
    assert suite.run_step(step, "cpu", False, out, force=False) is not None  # other parameters: runs again
    assert suite.run_step(step, "cpu", False, out, force=True) is not None
    assert counter.read_text() == "3"
    marker = json.loads((out / "01_count.done.json").read_text())
    assert marker["parameters"] == {"profile": "cpu"} and "git_commit" in marker


def test_a_coding_step_is_told_to_resume_unless_forced_and_resuming_is_not_one_of_its_recorded_parameters(tmp_path):
    seen = tmp_path / "resume.txt"
    parameters = 'profile: str = "cpu"  # profile\nresume: bool = True  # resume'
    _notebook(tmp_path / "04_code.ipynb", f"open({str(seen)!r}, 'a').write(str(resume))", parameters=parameters)
    (step,) = suite.discover(tmp_path)
    out = tmp_path / "executed"
    suite.run_step(step, "smoke", False, out, force=False)
    suite.run_step(step, "smoke", False, out, force=True)
    assert seen.read_text() == "TrueFalse"
    assert json.loads((out / "04_code.done.json").read_text())["parameters"] == {"profile": "smoke"}


def test_a_failing_step_names_the_notebook_and_the_cell_and_leaves_no_done_marker(tmp_path):
    _notebook(tmp_path / "02_broken.ipynb", "x = 1", "raise ValueError('boom')")
    (step,) = suite.discover(tmp_path)
    with pytest.raises(RuntimeError, match=r"step 02_broken failed in cell In \[4\] \(index 3 .*ValueError: boom"):
        suite.run_step(step, "smoke", False, tmp_path / "executed", force=False)
    assert not (tmp_path / "executed" / "02_broken.done.json").exists()
    assert (tmp_path / "executed" / "02_broken.ipynb").exists()


def test_the_runner_lists_the_committed_steps(capsys):
    assert suite.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [s.label for s in suite.discover(NOTEBOOKS)]
    assert lines[-1].startswith("total")


def test_the_list_says_how_long_each_step_took_last_time(tmp_path):
    for name in ("00_first", "03_third"):
        _notebook(tmp_path / f"{name}.ipynb")
    first, third = suite.discover(tmp_path)
    out = tmp_path / "executed"
    out.mkdir()
    record = {"parameters": {"profile": "cpu"}, "seconds": 692.4, "git_commit": "0123456789abcdef",
              "timestamp": "2026-12-06T11:29:34+00:00"}
    (out / "03_third.done.json").write_text(json.dumps(record))
    lines = suite.listing([first, third], out, "cpu").splitlines()
    assert lines[0].split() == ["00_first", "not", "run", "yet", "(cpu)"]
    assert lines[1].split() == ["03_third", "11", "min", "32", "s", "(2026-12-06", "11:29,", "commit", "0123456)"]
    assert lines[2].startswith("total") and "11 min 32 s" in lines[2] and "1 of 2" in lines[2]
    assert [suite.duration(s) for s in (4.06, 60, 3725)] == ["4.1 s", "1 min 00 s", "1 h 02 min"]


def test_a_step_prints_one_line_when_it_starts_and_one_when_it_ends_without_kernel_warnings(tmp_path, capfd, caplog):
    # papermill logs "Input Notebook: ..." twice per step (inspecting the parameters, then executing) and
    # ipykernel warns "Kernel is running over TCP without encryption" on the default transport: neither shows.
    # The kernel is a child process that writes to the same stderr, so capfd sees its warnings too.
    import logging

    code = "import ipykernel.connect\nprint(ipykernel.connect.get_connection_info())"
    path = _notebook(tmp_path / "00_tiny.ipynb", code)
    (step,) = suite.discover(tmp_path)
    handler = logging.StreamHandler()  # as suite.main: every logger's records go to stderr
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level("INFO"):
            assert suite.run_step(step, "smoke", False, tmp_path / "executed", force=False) is not None
    finally:
        logging.getLogger().removeHandler(handler)
    err = capfd.readouterr().err
    log = caplog.text + err
    assert "Input Notebook" not in log and "Output Notebook" not in log and "Executing notebook" not in log
    assert "without encryption" not in log and "WARNING" not in log, log
    assert err.count("[00_tiny] running 00_tiny.ipynb") == 1 and err.count("[00_tiny] done in") == 1, err
    executed = nbformat.read(tmp_path / "executed" / path.name, as_version=4)
    info = json.loads(executed.cells[-1].outputs[0]["text"])
    assert info["transport"] == "ipc" and not info["ip"].startswith(str(tmp_path))  # sockets not beside the notebook
    assert not Path(info["ip"]).parent.exists()  # the socket folder is removed with the kernel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00_tiny.ipynb", "executed"]


def test_a_finished_step_runs_again_when_a_file_it_reads_changes(tmp_path, caplog):
    counter, manifest = tmp_path / "count.txt", tmp_path / "models" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text("{}")
    code = f"from pathlib import Path\np = Path({str(counter)!r})\np.write_text(str(int(p.read_text() or 0) + 1) if p.exists() else '1')"
    path = _notebook(tmp_path / "01_count.ipynb", code)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["irec"] = {"inputs": ["models/*.json"]}
    nbformat.write(nb, path)
    (step,) = suite.discover(tmp_path)
    out = tmp_path / "executed"
    assert suite.run_step(step, "cpu", False, out, force=False, root=tmp_path) is not None
    assert suite.run_step(step, "cpu", False, out, force=False, root=tmp_path) is None
    manifest.write_text('{"models": ["a new one"]}')
    with caplog.at_level("INFO", logger="irec.evaluation.suite"):
        assert suite.run_step(step, "cpu", False, out, force=False, root=tmp_path) is not None
    assert "models/manifest.json changed" in caplog.text and counter.read_text() == "2"


def test_the_worker_count_reaches_a_coding_step_and_is_not_one_of_its_recorded_parameters(tmp_path):
    seen = tmp_path / "workers.txt"
    parameters = 'profile: str = "cpu"  # profile\nworkers: int = 0  # workers'
    _notebook(tmp_path / "04_code.ipynb", f"open({str(seen)!r}, 'a').write(str(workers))", parameters=parameters)
    (step,) = suite.discover(tmp_path)
    out = tmp_path / "executed"
    suite.run_step(step, "smoke", False, out, force=True, workers=1)
    assert suite.run_step(step, "smoke", False, out, force=False, workers=2) is None  # done: the count is no reason
    assert seen.read_text() == "1"
    assert json.loads((out / "04_code.done.json").read_text())["parameters"] == {"profile": "smoke"}
