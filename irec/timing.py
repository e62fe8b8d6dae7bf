"""Timing and peak-memory measurement for the benchmarks."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


@dataclass
class Measurement:
    """Wall-clock seconds and the peak resident memory above the starting level, in MiB."""

    seconds: float = 0.0
    peak_mib: float = 0.0
    _samples: list[int] = field(default_factory=list, repr=False)


@contextmanager
def measure(interval: float = 0.005):
    """``with measure() as m: ...`` fills ``m.seconds`` and ``m.peak_mib`` (sampled every ``interval`` s)."""
    m = Measurement()
    start_rss = _rss_bytes()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            m._samples.append(_rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        m._samples.append(_rss_bytes())
        m.peak_mib = max(0, max(m._samples) - start_rss) / 2**20
