"""Progress lines from a notebook's kernel reach run_all.sh's log (irec.evaluation.progress)."""

from __future__ import annotations

import logging

from irec.evaluation import progress
from irec.evaluation.parallel import imap_ordered
from irec.evaluation.progress import ProgressLines, follow


def _square(state, item):
    return item * item


def test_a_loop_run_under_follow_relays_a_line_with_the_count_the_rate_and_the_time_left(tmp_path):
    seen: list[str] = []
    with follow(tmp_path / "p.log", seen.append, poll_seconds=0.05):
        results = list(imap_ordered(_square, [(0, i) for i in range(5)], [lambda: None], desc="squares",
                                    progress=False))
    assert results == [0, 1, 4, 9, 16]
    assert seen and seen[-1].startswith("squares: 5/5 images (100%),") and "images/s, done" in seen[-1]


def test_lines_come_at_most_every_interval_and_always_at_the_end(tmp_path, monkeypatch):
    path = tmp_path / "p.log"
    monkeypatch.setenv(progress.ENV, str(path))
    lines = ProgressLines("coding", 100)
    for n in range(1, 100):
        lines.update(n)  # well within EVERY_SECONDS: nothing yet
    assert not path.exists()
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    lines.update(50, {"bpd": "4.9"})
    lines.update(100)
    written = path.read_text().splitlines()
    assert "50/100 images (50%)" in written[0] and "left" in written[0] and written[0].endswith("bpd 4.9")
    assert written[1].endswith("done")


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    ProgressLines("coding", 1).update(1)
    assert not list(tmp_path.iterdir())


def test_follow_restores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV, "before")
    with follow(tmp_path / "p.log", logging.getLogger("x").info):
        assert progress.os.environ[progress.ENV] == str(tmp_path / "p.log")
    assert progress.os.environ[progress.ENV] == "before"
