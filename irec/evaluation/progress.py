"""Progress lines a person can follow while a notebook codes: the kernel writes them, ``run_all.sh`` shows them.

A notebook executed by papermill has no terminal, so its progress bars are seen only in the executed notebook.
:func:`irec.evaluation.suite.run_step` names a file in :data:`ENV` for the notebook's kernel; long loops
(:func:`irec.evaluation.parallel.imap_ordered`) append a line to it every :data:`EVERY_SECONDS` with the count, the
rate and the time left (:class:`ProgressLines`), and :func:`follow` relays each new line to the suite's log, which
goes to the terminal and to ``results/logs/``. Without the variable (a notebook opened by hand) nothing is written.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ENV = "IREC_PROGRESS_FILE"
EVERY_SECONDS = 30.0  # at most one line per loop this often, and always one at the end


def duration(seconds: float) -> str:
    """``42.0 s``, ``11 min 32 s``, ``1 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressLines:
    """Appends ``desc: n/total units (p%), r units/s, about T left[, key value ...]`` to the file in :data:`ENV`."""

    def __init__(self, desc: str, total: int, unit: str = "image") -> None:
        self.path = os.environ.get(ENV)
        self.desc, self.total, self.unit = desc or "coding", total, unit
        self.start = self.last = time.monotonic()

    def update(self, n: int, extra: dict[str, str] | None = None) -> None:
        now = time.monotonic()
        if not self.path or (now - self.last < EVERY_SECONDS and n < self.total):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = n / elapsed
        left = (self.total - n) / rate if rate > 0 else float("nan")
        line = (f"{self.desc}: {n}/{self.total} {self.unit}s ({100 * n / max(self.total, 1):.0f}%), "
                f"{rate:.2f} {self.unit}s/s, " + ("done" if n >= self.total else f"about {duration(left)} left"))
        line += "".join(f", {key} {value}" for key, value in (extra or {}).items())
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@contextlib.contextmanager
def follow(path: Path, emit: Callable[[str], None], poll_seconds: float = 1.0) -> Iterator[None]:
    """Set :data:`ENV` to ``path`` (emptied) for the code inside, and call ``emit(line)`` for every line appended to
    it meanwhile, from a background thread; the last lines are relayed before the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    stop, previous = threading.Event(), os.environ.get(ENV)
    os.environ[ENV] = str(path)

    def relay() -> None:
        with open(path, encoding="utf-8") as f:
            while True:
                finished = stop.is_set()
                for line in f.readlines():
                    emit(line.rstrip("\n"))
                if finished:
                    return
                stop.wait(poll_seconds)

    thread = threading.Thread(target=relay, name="irec-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
