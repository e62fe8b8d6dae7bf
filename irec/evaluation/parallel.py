"""Coding images in a pool of worker processes on one machine (steps 03, 04, 05 and ``python -m irec.bench``).

Every image is coded on its own, so a dataset splits into independent jobs. :func:`imap_ordered` runs them in a
:class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes started with "spawn" (numba's and torch's
threads do not survive a fork). Each worker pins torch and numba to one thread and builds its codecs once, from
picklable *builders* (:func:`codec_builder`: the model's name or path and the codec's settings, never the model
object), in the pool's initializer. The results come back **in the order of the jobs** (a few jobs run ahead of
the oldest one unfinished), so the caller writes each row as soon as it and every row before it are done: the CSV
lists the images in the same order as a one-worker run, and an interrupted run leaves a prefix of the images, which
resume-per-image keeps. The coder's files do not depend on the process that made them (the coder pins one thread
around every network evaluation), so the rows are those of a one-worker run apart from the timings and stamps
(tests/test_parallel.py). The workers' log records (warnings, errors) are relayed to this process's loggers, so
they show where its own do (the notebook, the log) rather than on the terminal. ``workers=1`` codes in this
process as before; 0 (or None) means one worker per core available (:func:`available_cores`). Starting the pool
(each worker imports torch and loads its models) costs a few seconds, paid once per call. As with any "spawn" pool,
a script that codes with several workers needs the ``if __name__ == "__main__":`` guard (notebooks, ``irec`` and
``python -m irec.bench`` have it).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import logging.handlers
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from irec.evaluation.progress import ProgressLines

AHEAD = 4  # jobs in flight per worker: enough to keep every worker busy while the oldest job finishes

_STATE: list = []  # in a worker: what its builders built (the codecs), by builder index


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the platform has one)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def worker_count(workers: int | None, jobs: int | None = None) -> int:
    """Worker processes to start: ``workers``, or one per available core for 0 / None, and no more than ``jobs``."""
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0: one per available core), got {workers}")
    count = workers or available_cores()
    return max(1, min(count, jobs)) if jobs is not None else count


def pin_one_thread() -> None:
    """One torch thread (intra- and inter-op) and one numba thread in this process: each worker takes one core."""
    import numba
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass
    numba.set_num_threads(1)


def build_codec(kind: str, source: str, fingerprint: str, options: dict[str, Any]):
    """The codec of ``kind`` for the model ``source`` (a name or a saved-model path, :func:`irec.zoo.resolve_model`)
    with ``options`` (the codec's own keyword arguments); the model must still have ``fingerprint``."""
    from irec import zoo
    from irec.codecs import codec_class

    model, found, _ = zoo.resolve_model(source)
    if found != fingerprint:
        raise ValueError(f"{source} no longer holds the model being coded with (fingerprint {found[:16]}, not "
                         f"{fingerprint[:16]}): it changed during the run")
    return codec_class(kind)(model, found, **options)


def codec_builder(codec, source: str | None) -> Callable[[], Any] | None:
    """A picklable builder of a codec equal to ``codec`` (an iREC codec) in a worker: its model's name or path
    ``source``, its fingerprint and its settings (the constructor's arguments, read back from the codec); None
    without ``source`` (then only ``workers=1`` can code with it)."""
    if source is None:
        return None
    names = list(inspect.signature(type(codec)).parameters)[2:]  # after (model, fingerprint)
    options = {name: getattr(codec, name) for name in names}
    return functools.partial(build_codec, codec.kind, str(source), codec.fingerprint, options)


def warmed(build: Callable[[], Any], image) -> Any:
    """What ``build`` builds, after one untimed round trip of ``image`` (so that a worker's first timed image is
    not its cold start: numba's and torch's first calls)."""
    codec = build()
    codec.decompress(codec.compress(image))
    return codec


def ready(value: Any) -> Callable[[], Any]:
    """A builder of something that pickles as it is (e.g. the classical codecs' settings)."""
    return functools.partial(_identity, value)


def _identity(value: Any) -> Any:
    return value


class _Relay(logging.Handler):
    """Hands a worker's log record to the same logger in this process (its handlers: the notebook's, the log's)."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _start(builders: Sequence[Callable[[], Any]], records=None, level: int = logging.WARNING) -> None:
    """The pool's initializer: the worker's log records go to ``records`` (relayed by the parent), one thread,
    then every codec built once."""
    if records is not None:
        root = logging.getLogger()
        root.handlers[:] = [logging.handlers.QueueHandler(records)]
        root.setLevel(level)
    pin_one_thread()
    _STATE[:] = [build() for build in builders]


def _run(task: Callable[[Any, Any], Any], index: int, item: Any) -> Any:
    return task(_STATE[index], item)


def imap_ordered(
    task: Callable[[Any, Any], Any],
    jobs: Sequence[tuple[int, Any]],
    builders: Sequence[Callable[[], Any] | None],
    *,
    workers: int | None = 1,
    local: Sequence[Any] | None = None,
    desc: str = "",
    unit: str = "image",
    progress: bool = True,
    means: Callable[[Any], dict[str, float]] | None = None,
) -> Iterator[Any]:
    """``task(state[index], item)`` for every ``(index, item)`` of ``jobs``, yielded in the order of ``jobs``.

    ``task``: a module-level function (workers import it by name); ``builders[index]()`` builds ``state[index]``
    once per worker; ``workers``: processes (0 / None: one per available core; 1: in this process, with ``local``
    as the states when given, else built here); ``means(result)``: numbers whose running means the progress bar
    shows (e.g. the rate so far)."""
    jobs = list(jobs)
    count = worker_count(workers, len(jobs))
    if count > 1 and any(build is None for build in builders):
        raise ValueError("coding in several worker processes needs the model's name or path (source=...), which "
                         "each worker loads; pass it, or workers=1")
    totals: dict[str, float] = {}
    bar = tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress or not jobs)
    lines, done = ProgressLines(desc, len(jobs), unit), [0]  # for run_all.sh's log (irec.evaluation.progress)

    def shown(result: Any) -> Any:
        done[0] += 1
        if means is not None:
            for key, value in means(result).items():
                totals[key] = totals.get(key, 0.0) + value
            bar.set_postfix({key: f"{value / done[0]:.4f}" for key, value in totals.items()}, refresh=False)
        bar.update()
        lines.update(done[0], {key: f"{value / done[0]:.4f}" for key, value in totals.items()})
        return result

    try:
        if count == 1:
            states = list(local) if local is not None else [build() for build in builders]
            for index, item in jobs:
                yield shown(task(states[index], item))
            return
        context = multiprocessing.get_context("spawn")
        records = context.Queue()
        relay = logging.handlers.QueueListener(records, _Relay())
        relay.start()
        level = logging.getLogger().getEffectiveLevel()
        with contextlib.ExitStack() as stack:
            stack.callback(relay.stop)
            pool = stack.enter_context(ProcessPoolExecutor(count, mp_context=context, initializer=_start,
                                                           initargs=(list(builders), records, level)))
            waiting = iter(jobs)
            pending = deque(pool.submit(_run, task, index, item) for index, item in
                            (next(waiting) for _ in range(min(len(jobs), count * AHEAD))))
            try:
                while pending:
                    result = pending.popleft().result()
                    for index, item in waiting:
                        pending.append(pool.submit(_run, task, index, item))
                        break
                    yield shown(result)
            finally:
                for future in pending:
                    future.cancel()
    finally:
        bar.close()


class TilePool:
    """A lossless codec's ``tile_map`` (irec.codecs.tiles) that codes one image's tiles in ``workers`` processes with
    :func:`imap_ordered`, each building its codec once with ``build`` (:func:`codec_builder`): the codec's bound
    method it is given runs, by name, on the worker's equal codec (so the model is never pickled), and the results
    come back in the tiles' order. Each call starts its own pool, as one ``irec compress --workers N`` does."""

    def __init__(self, build: Callable[[], Any], codec, workers: int, *, progress: bool = False) -> None:
        self.build, self.codec, self.workers, self.progress = build, codec, workers, progress

    def __call__(self, function: Callable[[Any], Any], items: Sequence[Any]) -> list:
        if getattr(function, "__self__", None) is not self.codec:
            raise ValueError("the tile pool runs methods of the codec it was made for")
        jobs = [(0, (function.__name__, item)) for item in items]
        return list(imap_ordered(_tile_task, jobs, [self.build], workers=self.workers, local=[self.codec],
                                 desc="tiles", unit="tile", progress=self.progress))


def _tile_task(codec, job: tuple[str, Any]) -> Any:
    """A worker's share of :class:`TilePool`: the codec's method ``name`` on one tile."""
    name, item = job
    return getattr(codec, name)(item)
