"""Coding steps sharded across machines with torch.distributed (torchrun): each rank codes its share of the images
into its own shard file, and the shards merge into the one results file (docs/multi-machine.md).

The engine is torchrun's, as in training (:mod:`irec.training.loop`): ``RANK`` and ``WORLD_SIZE`` say which process
this is (rank 0 of 1 outside torchrun), and :func:`process_group` joins the group (gloo) when there are several.
Image ``i`` of a step goes to rank ``i % world`` (:func:`share`), so a rank's share is the same after a restart.
A rank writes its rows to ``<folder>/shards/<stem>.rank<R>-of-<W>.csv`` beside the final CSV (:func:`shard_path`)
exactly as a one-process run writes the final CSV, so an interrupted rank resumes from its shard by the steps'
own resume-per-image logic (:mod:`irec.evaluation.pipeline`). When every rank is done (:func:`finish`), the
shards are gathered to rank 0 over the process group (no shared disk needed), rank 0 keeps copies beside its own
and :func:`merge` writes the final CSV: the rows of a one-process run, in the images' order (model by model), cell
for cell, apart from the timings and stamps. A missing or incomplete shard is refused, naming the ranks, rather
than merged into a partial file; :func:`merge` also runs by hand in one process once the shards are in one place.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from irec.fileio import atomic_write

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long a finished rank waits for the others at the merge: a rank's share of the paper profile takes hours.
WAIT = timedelta(days=7)


class ShardsError(RuntimeError):
    """Shards that cannot be merged: a rank's shard is missing, incomplete, or holds images of no rank."""


@dataclass(frozen=True)
class Place:
    """Which process of the run this is: ``rank`` of ``world`` (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world: int = 1


def place() -> Place:
    """This process's rank and world size: the process group's when one is up, else torchrun's environment."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Place(dist.get_rank(), dist.get_world_size())
    return Place(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


@contextmanager
def process_group() -> Iterator[Place]:
    """This process's :class:`Place`, inside torchrun's process group when the world has several ranks (gloo, which
    the merge's messages need; joined here unless one is already up, and left afterwards)."""
    import torch.distributed as dist

    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (dist.is_available() and dist.is_initialized()):
        dist.init_process_group(backend="gloo", timeout=WAIT)
        created = True
    try:
        yield place()
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def share(items: Sequence[T], where: Place) -> list[T]:
    """The items rank ``where.rank`` codes: item ``i`` goes to rank ``i % world`` (all of them for one rank)."""
    return list(items[where.rank::where.world])


def shard_path(out: str | os.PathLike, where: Place) -> Path:
    """Where rank ``where.rank`` writes its rows of the results file ``out``: ``shards/<stem>.rank<R>-of-<W>.csv``
    beside it; ``out`` itself for a world of one rank."""
    out = Path(out)
    if where.world == 1:
        return out
    return out.parent / "shards" / f"{out.stem}.rank{where.rank}-of-{where.world}{out.suffix}"


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV's header and rows, cells as written (so that the merged file holds the shards' very text)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def merge(out: str | os.PathLike, world: int, images: Sequence[str], models: Sequence[str] | None = None) -> Path:
    """Write ``out`` from the shards of a ``world``-rank run: every rank's rows, in the order of ``images`` (model by
    model, in the order of ``models``, when given), as a one-process run lists them. Raises :class:`ShardsError`,
    writing nothing, when a rank that had images has no shard or lacks some of its images (it was interrupted:
    rerun it, it resumes), or when a shard holds a row of an image or model not asked for."""
    out = Path(out)
    position = {name: i for i, name in enumerate(images)}
    order = {name: i for i, name in enumerate(models or [""])}
    ranks = range(min(world, len(images)))  # a rank beyond the images has nothing to code
    missing = [r for r in ranks if not shard_path(out, Place(r, world)).is_file()]
    if missing:
        raise ShardsError(f"cannot merge {out}: no shard of rank(s) {', '.join(map(str, missing))} of {world} in "
                          f"{out.parent / 'shards'}; rerun the same command (each rank resumes), or copy the "
                          f"missing rank(s)' shard files there")
    header: list[str] = []
    rows: list[dict[str, str]] = []
    incomplete = []
    for rank in ranks:
        path = shard_path(out, Place(rank, world))
        columns, found = _read(path)
        header += [c for c in columns if c not in header]
        keys = {(row.get("model", "") if models else "", row.get("image")) for row in found}
        wanted = {(m, name) for m in order for name in share(list(images), Place(rank, world))}
        strays = keys - wanted
        if strays:
            raise ShardsError(f"cannot merge {out}: {path.name} holds rows of other images or models, e.g. "
                              f"{sorted(strays)[0]}; was it written for another run (images, models, world size)?")
        if wanted - keys:
            incomplete.append(f"rank {rank} ({len(wanted - keys)} of {len(wanted)} rows missing)")
        rows += found
    if incomplete:
        raise ShardsError(f"cannot merge {out}: incomplete shard(s) of {'; '.join(incomplete)}; rerun the same "
                          f"command (each rank resumes and codes only what it had not finished)")
    rows.sort(key=lambda row: (order[row.get("model", "")] if models else 0, position[row["image"]]))
    with atomic_write(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    log.info("%s: %d rows merged from %d shards", out, len(rows), len(ranks))
    return out


def finish(out: str | os.PathLike, where: Place, images: Sequence[str], models: Sequence[str] | None = None) -> None:
    """Once this rank has coded its share of ``out``: wait for every rank, gather their shards to rank 0 (which keeps
    copies in its own ``shards/`` folder) and merge them there (:func:`merge`); every rank raises if the merge
    fails. Nothing to do for a world of one rank, which wrote ``out`` itself."""
    if where.world == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        raise ShardsError(f"rank {where.rank} of {where.world} has no process group to merge {out} with; code "
                          f"inside irec.evaluation.shards.process_group() (torchrun sets up its environment)")
    mine = shard_path(out, where)
    text = mine.read_bytes() if mine.is_file() else None
    gathered: list[Any] | None = [None] * where.world if where.rank == 0 else None
    dist.gather_object(text, gathered, dst=0)
    failure: list[Any] = [None]
    if where.rank == 0:
        try:
            for rank, shard in enumerate(gathered or []):
                path = shard_path(out, Place(rank, where.world))
                if rank and shard is not None and (not path.is_file() or path.read_bytes() != shard):
                    with atomic_write(path, "wb") as handle:
                        handle.write(shard)
            merge(out, where.world, images, models)
        except (ShardsError, OSError) as err:
            failure[0] = str(err)
    dist.broadcast_object_list(failure, src=0)
    if failure[0] is not None:
        raise ShardsError(failure[0])
