"""Coding steps sharded across ranks with torch.distributed (irec.evaluation.shards): two local torchrun ranks write
the rows of a one-process run into the one results file, an interrupted rank resumes from its shard, and shards
that are missing or incomplete are never merged into a partial file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from irec.evaluation import pipeline, results, shards
from irec.evaluation.results import read_rows, results_path, write_rows
from irec.evaluation.shards import Place, ShardsError
from tests.models import save_small
from tests.test_parallel import VARYING

COMMIT = "a" * 40  # a clean commit, so that rows are resumed (rows of uncommitted code never are)
# One rank under torchrun: results under argv[1], the commit above, step 04 of the smoke profile with the model argv[2].
RANK_SCRIPT = f"""
import sys
from pathlib import Path
from irec import provenance
from irec.evaluation import pipeline, results
results.RESULTS = Path(sys.argv[1])
provenance.git_commit = lambda: {COMMIT!r}
choice = pipeline.ModelChoice("lossless", "tiny", sys.argv[2], "a tiny model")
rows = pipeline.compress_lossless(choice, "smoke", workers=1)
print("rank rows", len(rows))
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny-lossless.pt"
    save_small("lossless", path, seed=0)
    return str(path)


def torchrun(root: Path, model: str, script: Path) -> float:
    """Step 04 (smoke) in two local ranks, as docs/multi-machine.md's command on one machine; its wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IREC_DATA": os.environ.get("IREC_DATA", "../shared/data")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(root), model], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def two_ranks(tiny_model, tmp_path_factory) -> dict:
    """A finished two-rank run of step 04 (smoke) under torchrun: its results folder and script."""
    root = tmp_path_factory.mktemp("two-ranks")
    script = root / "rank.py"
    script.write_text(RANK_SCRIPT)
    seconds = torchrun(root / "results", tiny_model, script)
    return {"root": root / "results", "script": script, "seconds": seconds}


def _stable(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=VARYING, errors="ignore").reset_index(drop=True)


def test_two_local_ranks_write_the_same_rows_as_one_process(two_ranks, tiny_model, tmp_path, monkeypatch,
                                                            one_torch_thread):
    from irec import provenance

    monkeypatch.setattr(results, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(provenance, "git_commit", lambda: COMMIT)
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    choice = pipeline.ModelChoice("lossless", "tiny", tiny_model, "a tiny model")
    pipeline.compress_lossless(choice, "smoke", workers=1)
    one = read_rows(results_path("lossless", "cifar10", "smoke"))
    out = two_ranks["root"] / "lossless" / "cifar10-smoke.csv"
    two = read_rows(out)
    assert len(one) == pipeline.LOSSLESS_IMAGES["smoke"][0] == 4
    pd.testing.assert_frame_equal(_stable(two), _stable(one))  # the same rows in the same order
    for rank in (0, 1):
        shard = read_rows(shards.shard_path(out, Place(rank, 2)))
        assert list(shard["image"]) == list(one["image"])[rank::2]  # image i went to rank i % 2
    assert not (tmp_path / "results" / "lossless" / "shards").exists()  # one process: no shards


def test_an_interrupted_rank_resumes_without_recoding_the_images_it_had_coded(two_ranks, tiny_model):
    out = two_ranks["root"] / "lossless" / "cifar10-smoke.csv"
    first = {rank: pd.read_csv(shards.shard_path(out, Place(rank, 2))) for rank in (0, 1)}
    first[1].iloc[:1].to_csv(shards.shard_path(out, Place(1, 2)), index=False)  # rank 1 stopped after one image
    out.unlink()
    torchrun(two_ranks["root"], tiny_model, two_ranks["script"])
    again = {rank: pd.read_csv(shards.shard_path(out, Place(rank, 2))) for rank in (0, 1)}
    assert list(again[0]["timestamp"]) == list(first[0]["timestamp"])  # rank 0 had finished: nothing recoded
    assert again[1]["timestamp"].iloc[0] == first[1]["timestamp"].iloc[0]  # kept, not coded again
    assert again[1]["timestamp"].iloc[1] != first[1]["timestamp"].iloc[1]  # the image it had not coded
    merged = read_rows(out)
    assert list(merged["image"]) == [first[i % 2]["image"].iloc[i // 2] for i in range(4)]
    assert (merged["git_commit"] == COMMIT).all()


def test_the_shards_merge_by_hand_with_the_command_line(two_ranks, tiny_model, monkeypatch):
    out = two_ranks["root"] / "lossless" / "cifar10-smoke.csv"
    before = read_rows(out)
    out.unlink()
    monkeypatch.setattr(results, "RESULTS", two_ranks["root"])
    assert pipeline.main(["lossless", "--profile", "smoke", "--model", tiny_model, "--merge", "2"]) == 0
    pd.testing.assert_frame_equal(read_rows(out), before)
    shards.shard_path(out, Place(1, 2)).unlink()
    with pytest.raises(ShardsError, match=r"rank\(s\) 1 of 2"):
        pipeline.main(["lossless", "--profile", "smoke", "--model", tiny_model, "--merge", "2"])


def _shard(out: Path, rank: int, world: int, rows: list[dict]) -> None:
    write_rows(shards.shard_path(out, Place(rank, world)), rows)


def test_a_merge_with_a_missing_shard_names_the_missing_ranks_and_writes_nothing(tmp_path):
    out = tmp_path / "kodak.csv"
    images = [f"img{i}" for i in range(5)]
    _shard(out, 0, 3, [{"image": name, "bpp": 1.0} for name in images[0::3]])
    with pytest.raises(ShardsError, match=r"rank\(s\) 1, 2 of 3"):
        shards.merge(out, 3, images)
    _shard(out, 1, 3, [{"image": images[1], "bpp": 2.0}])  # rank 1 stopped before its second image
    _shard(out, 2, 3, [{"image": images[2], "bpp": 3.0}])
    with pytest.raises(ShardsError, match=r"rank 1 \(1 of 2 rows missing\)"):
        shards.merge(out, 3, images)
    assert not out.exists()


def test_merged_rows_follow_the_images_order_model_by_model_and_keep_the_shards_text(tmp_path):
    out = tmp_path / "kodak.csv"
    images, models = ["c", "a", "b"], ["m2", "m1"]
    for rank in (0, 1):
        mine = shards.share(images, Place(rank, 2))
        _shard(out, rank, 2, [{"image": name, "model": model, "psnr_db": float("inf"), "note": ""}
                              for model in reversed(models) for name in mine])
    shards.merge(out, 2, images, models)
    merged = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(zip(merged["model"], merged["image"])) == [(m, i) for m in models for i in images]
    assert set(merged["psnr_db"]) == {"inf"} and set(merged["note"]) == {""}
    with pytest.raises(ShardsError, match="other images or models"):
        shards.merge(out, 2, images[:2], models)


def test_a_rank_knows_its_place_and_share_and_one_rank_writes_the_results_file_itself(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert shards.place() == Place(0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert shards.place() == Place(2, 3)
    assert shards.share(list(range(8)), Place(2, 3)) == [2, 5] and shards.share([0], Place(2, 3)) == []
    out = Path("results/lossy/kodak.csv")
    assert shards.shard_path(out, Place(0, 1)) == out
    assert shards.shard_path(out, Place(2, 3)) == Path("results/lossy/shards/kodak.rank2-of-3.csv")
    shards.finish(out, Place(0, 1), ["img0"])  # one rank: nothing to merge
