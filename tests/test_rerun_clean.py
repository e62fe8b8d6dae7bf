"""Re-running the suite's steps from the committed results leaves a fresh clone's tree clean.

Figures are written without dates or random ids, the table's caption names the commits of its rows, and rows
record what they used, so steps 06 (the lossless table) and 07 (the rate-distortion figures), run again on a fresh
clone, must leave ``git status`` empty: nothing committed changes when no number did.
"""

from __future__ import annotations

import os
import subprocess
import sys

from irec.paths import REPO


def test_rerunning_the_table_and_figure_steps_on_a_fresh_clone_changes_no_committed_file(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(clone)}  # the kernels import the clone's irec, which writes there
    done = subprocess.run([sys.executable, "-m", "irec.evaluation.suite", "--only", "06", "07", "--force"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", f"the re-run changed committed files:\n{status.stdout}"
