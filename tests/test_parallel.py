"""Coding in worker processes (irec.evaluation.parallel) gives the files and rows of a one-worker run, in order."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd
import pytest

from irec import zoo
from irec.codecs.classical import make_codecs
from irec.codecs.lossless import LosslessCodec
from irec.codecs.lossy import LossyCodec
from irec.evaluation import parallel
from irec.evaluation.baselines import dataset_split, run_baselines
from irec.evaluation.lossless import evaluate_images
from irec.evaluation.lossy import evaluate_dataset
from irec.evaluation.results import read_rows
from tests.models import save_small

# What may differ between two runs of the same files: when and how fast they were made, and the stamp.
VARYING = ["encode_s", "decode_s", "timestamp", "encode_peak_mib", "decode_peak_mib", "git_commit", "device"]
IMAGES = [(f"img{i}", np.random.default_rng(i).integers(0, 256, (16 + 4 * i, 24, 3), dtype=np.uint8))
          for i in range(4)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny untrained models saved to files, as the workers load them: {kind: (path, codec)}."""
    root = tmp_path_factory.mktemp("models")
    found = {}
    for kind, cls in (("lossless", LosslessCodec), ("lossy", LossyCodec)):
        path = str(root / f"tiny-{kind}.pt")
        save_small(kind, path, seed=0)
        model, fingerprint, _ = zoo.resolve_model(path)
        found[kind] = (path, cls(model, fingerprint, **({"final": "best-q"} if kind == "lossy" else {})))
    return found


def file_hashes(codec, item) -> tuple[str, int, str, str]:
    """One job: (name, file bytes, file sha256, decoded pixels' sha256)."""
    name, image = item
    data = codec.compress(image)
    decoded = codec.decompress(data)
    return name, len(data), hashlib.sha256(data).hexdigest(), hashlib.sha256(decoded.tobytes()).hexdigest()


def test_two_workers_write_the_same_files_of_both_kinds_in_the_jobs_order(models):
    builders = [parallel.codec_builder(codec, path) for path, codec in models.values()]
    local = [codec for _, codec in models.values()]
    jobs = [(index, item) for item in IMAGES for index in range(len(builders))]
    one = list(parallel.imap_ordered(file_hashes, jobs, builders, workers=1, local=local, progress=False))
    two = list(parallel.imap_ordered(file_hashes, jobs, builders, workers=2, progress=False))
    assert [r[0] for r in two] == [name for _, (name, _) in jobs]  # the order of the jobs
    assert two == one  # the same bytes and the same decoded images


def _same_rows(one: pd.DataFrame, two: pd.DataFrame) -> None:
    assert list(two["image"]) == [name for name, _ in IMAGES]
    pd.testing.assert_frame_equal(one.drop(columns=VARYING, errors="ignore"),
                                  two.drop(columns=VARYING, errors="ignore"))


def test_lossless_rows_of_two_workers_are_those_of_one_in_the_images_order(models, tmp_path):
    path, codec = models["lossless"]
    kwargs = {"dataset": "toy", "model": "tiny", "progress": False, "source": path}
    one = pd.DataFrame(evaluate_images(codec, IMAGES, workers=1, **kwargs))
    two = pd.DataFrame(evaluate_images(codec, IMAGES, workers=2, out=tmp_path / "rows.csv", **kwargs))
    _same_rows(one, two)
    assert two["exact"].all() and list(read_rows(tmp_path / "rows.csv")["n_bytes"]) == list(one["n_bytes"])


def test_lossy_rows_of_two_workers_are_those_of_one(models, tmp_path):
    path, codec = models["lossy"]
    kwargs = {"dataset": "toy", "model": "tiny", "progress": False, "source": path}
    one = evaluate_dataset(codec, IMAGES, workers=1, **kwargs)
    two = evaluate_dataset(codec, IMAGES, workers=2, out=tmp_path / "rows.csv", **kwargs)
    _same_rows(one, two)
    assert list(read_rows(tmp_path / "rows.csv")["image"]) == [name for name, _ in IMAGES]


def test_classical_rows_of_two_workers_are_those_of_one(tmp_path):
    codecs = make_codecs(["png", "jpeg"])[:3]
    one = run_baselines(IMAGES, codecs, dataset="toy", progress=False, workers=1)
    two = run_baselines(IMAGES, codecs, dataset="toy", progress=False, workers=2, out=tmp_path / "rows.csv")
    assert list(two["image"]) == [name for name, _ in IMAGES for _ in codecs]
    pd.testing.assert_frame_equal(one.drop(columns=VARYING, errors="ignore"),
                                  two.drop(columns=VARYING, errors="ignore"))


def test_several_workers_need_the_model_by_name_or_path_and_zero_means_every_core(models):
    _, codec = models["lossless"]
    with pytest.raises(ValueError, match="name or path"):
        list(evaluate_images(codec, IMAGES, workers=2, progress=False))
    assert parallel.worker_count(0) == parallel.available_cores() >= 1
    assert parallel.worker_count(8, jobs=3) == 3 and parallel.worker_count(None, jobs=0) == 1
    with pytest.raises(ValueError, match=">= 0"):
        parallel.worker_count(-1)


def test_rows_record_the_split_they_used():
    assert dataset_split("cifar10", None) == "test" and dataset_split("cifar10", "train") == "train"
    assert dataset_split("imagenet32", None) == "valid" and dataset_split("kodak", None) == ""
    assert dataset_split("bsds500", None) == "" and dataset_split("/some/folder", None) == ""


def shout(state, item):
    """One job that logs a warning in its worker."""
    logging.getLogger("irec.test_parallel").warning("job %s in a worker (%s)", item, state)
    return item


def test_the_workers_log_records_reach_this_processs_loggers(caplog):
    with caplog.at_level(logging.WARNING):
        done = list(parallel.imap_ordered(shout, [(0, i) for i in range(3)], [parallel.ready("ready")], workers=2,
                                          progress=False))
    assert done == [0, 1, 2]
    assert sorted(r.getMessage() for r in caplog.records if r.name == "irec.test_parallel") == [
        f"job {i} in a worker (ready)" for i in range(3)]
