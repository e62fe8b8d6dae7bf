"""``python -m irec.bench exact``: what the exact (integer) models cost against the float models they came from.

The decoders compute in exact integer arithmetic (:mod:`irec.models.exact`) so that files decode on any machine.
This benchmark measures, side by side in one run, the float checkpoints of the last float release
(``--float-commit``, read from git history) against the shipped exact models:

- **quality**: the lossless model's -ELBO on CIFAR-10 test images (the same posterior samples for both; the real
  bits per dimension follow the -ELBO, docs/reference-run.md) and, for every lossy model, the ideal rate (KL of the
  posterior, z2 at q2's mean) and the PSNR of the reconstruction of q1's mean on Kodak; targets: at most 1% in
  bpd, at most 1% in rate or 0.05 dB (docs/cross-device.md);
- **decode time**: ``decompress`` of one file of a CIFAR-10 image and one of a Kodak image, by the float release's
  codec (its own checkout, in a fresh process) and by this one's, with one thread and with the machine's default
  (the float decoder pins its networks to one thread whatever the default; the exact one gives the same bits at
  any count, so its synthesis uses every core); target: at most 2x.

Rows go to ``results/bench/exact.csv`` with the usual provenance.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from irec import paths, provenance
from irec.checkpoint import load_model
from irec.data import load_images
from irec.paths import RESULTS
from irec.zoo import list_models, resolve_model

FLOAT_COMMIT = "585d456"  # the last release with float models (irec.codecs.container.LAST_FLOAT_COMMIT)
TARGETS = {"bpd_percent": 1.0, "rate_percent": 1.0, "psnr_db": 0.05, "decode_ratio": 2.0}
# Times one decompress of a file written by the same codec; runs in either checkout (the float one or this one).
TIMING = """
import json, sys, time
import numpy as np
from irec.codecs import make_codec
from irec.data import load_images
name, dataset, split, index = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
image = load_images(dataset, split=split, limit=index + 1)[index][1]
codec, _ = make_codec(name)
if hasattr(codec, "final"):
    codec.final = "best-q"  # one encoding: the decoder's time does not depend on the encoder's choice
data = codec.compress(image)
times = []
for _ in range(3):
    start = time.perf_counter(); codec.decompress(data); times.append(time.perf_counter() - start)
print(json.dumps({"decode_seconds": min(times), "n_bytes": len(data)}))
"""


def float_checkpoint(name: str, commit: str, folder: Path) -> Path:
    """models/<name>.pt as it was at ``commit`` (git history), written into ``folder``."""
    blob = subprocess.run(["git", "-C", str(paths.REPO), "show", f"{commit}:models/{name}.pt"], check=True,
                          capture_output=True).stdout
    path = folder / f"{name}-{commit}.pt"
    path.write_bytes(blob)
    return path


def lossless_quality(float_model, exact_model, images: np.ndarray, batch: int = 100) -> dict:
    """Mean -ELBO (bits per dimension) of both models, one posterior sample each, the same seeds."""
    out = {"float": [], "exact": []}
    for start in tqdm(range(0, len(images), batch), desc="lossless -ELBO", leave=False):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch].transpose(0, 3, 1, 2)))
        for label, model in (("float", float_model), ("exact", exact_model)):
            torch.manual_seed(start)
            with torch.no_grad():
                out[label].append(model.negative_elbo(x).bpd)  # the exact model's: through its exact top-down path
    return {label: float(torch.cat(v).double().mean()) for label, v in out.items()}


def lossy_quality(model, image: np.ndarray) -> tuple[float, float]:
    """(ideal bpp, PSNR in dB of the uint8 reconstruction of q1's mean) of one image, padded as the codec pads."""
    from irec.codecs.lossy import _to_batch, synthesized_image

    x, size = _to_batch(image)
    with torch.no_grad():
        enc = model.analysis(x)
        q2 = model.posterior_z2(enc)
        p2 = model.prior_z2(q2.shape[-2:])
        p1 = model.prior_z1(q2.loc)
        q1 = model.posterior_z1(enc, p1)
        kl = float(q2.kl(p2).double().sum()) + float(q1.kl(p1).double().sum())
        decoded, _ = synthesized_image(model.synthesis(q1.loc), size)
    mse = float(np.mean((decoded.astype(np.float64) - image.astype(np.float64)) ** 2))
    return kl / (math.log(2.0) * image.shape[0] * image.shape[1]), 10 * math.log10(255.0**2 / mse)


def decode_seconds(checkout: Path, name: str, dataset: str, split: str, index: int, one_thread: bool) -> dict:
    """The timing script's result in a fresh process whose ``irec`` is the one in ``checkout``, with one thread for
    torch and numba, or the machine's default (every core)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    for variable in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(variable, None)
        if one_thread:
            env[variable] = "1"
    done = subprocess.run([sys.executable, "-c", TIMING, name, dataset, split, str(index)], check=True, env=env,
                          capture_output=True, text=True, cwd=checkout)
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m irec.bench exact", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--float-commit", default=FLOAT_COMMIT, help="the commit whose models/ holds the float models")
    parser.add_argument("--cifar-images", type=int, default=1000, help="CIFAR-10 test images for the lossless -ELBO")
    parser.add_argument("--kodak-images", type=int, default=24, help="Kodak images per lossy model")
    parser.add_argument("--models", nargs="+", help="shipped model names (default: all)")
    parser.add_argument("--no-timing", action="store_true", help="skip the decode times (they need git worktree)")
    parser.add_argument("--no-quality", action="store_true", help="only the decode times")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench" / "exact.csv", help="CSV for the rows")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [] if args.no_quality else args.models or [m["name"] for m in list_models() if m["source"] == "shipped"]
    stamp, rows = provenance.stamp(), []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in names:
            exact_model, fingerprint, info = resolve_model(name)
            float_model, float_fingerprint = load_model(float_checkpoint(name, args.float_commit, tmp))
            base = {**stamp, "model": name, "fingerprint": fingerprint[:16], "float_fingerprint": float_fingerprint[:16],
                    "float_commit": args.float_commit}
            if info["kind"] == "lossless":
                images = load_images("cifar10", split="test", limit=args.cifar_images)
                pixels = np.stack([im for _, im in images])
                q = lossless_quality(float_model, exact_model, pixels)
                rows.append({**base, "measure": "negative_elbo_bpd", "dataset": "cifar10", "n_images": len(pixels),
                             "float": q["float"], "exact": q["exact"],
                             "change_percent": 100 * (q["exact"] / q["float"] - 1)})
            else:
                images = load_images("kodak", limit=args.kodak_images)
                values = {"float": [], "exact": []}
                for _, image in tqdm(images, desc=name, leave=False):
                    for label, model in (("float", float_model), ("exact", exact_model)):
                        values[label].append(lossy_quality(model, image))
                for i, measure in enumerate(("ideal_bpp", "psnr_db")):
                    f, e = (float(np.mean([v[i] for v in values[k]])) for k in ("float", "exact"))
                    change = 100 * (e / f - 1) if measure == "ideal_bpp" else e - f
                    rows.append({**base, "measure": measure, "dataset": "kodak", "n_images": len(images),
                                 "float": f, "exact": e, "change_percent" if i == 0 else "change_db": change})
        if not args.no_timing:
            worktree = tmp / "float-checkout"
            subprocess.run(["git", "-C", str(paths.REPO), "worktree", "add", "--detach", str(worktree),
                            args.float_commit], check=True, capture_output=True)
            try:
                cases = (("lossless-cifar10", "cifar10", "test"), ("lossy-mse-0.01", "kodak", ""))
                for (name, dataset, split), one_thread in itertools.product(cases, (True, False)):
                    then, now = (decode_seconds(c, name, dataset, split, 0, one_thread) for c in (worktree, paths.REPO))
                    rows.append({**stamp, "model": name, "dataset": dataset, "n_images": 1,
                                 "measure": "decode_seconds_" + ("one_thread" if one_thread else "default_threads"),
                                 "float": then["decode_seconds"], "exact": now["decode_seconds"],
                                 "ratio": now["decode_seconds"] / then["decode_seconds"], "float_commit": args.float_commit})
            finally:
                subprocess.run(["git", "-C", str(paths.REPO), "worktree", "remove", "--force", str(worktree)],
                               check=False, capture_output=True)
    df = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    shown = df[[c for c in ("model", "measure", "dataset", "n_images", "float", "exact", "change_percent",
                            "change_db", "ratio") if c in df.columns]]
    sys.stdout.write(f"Float models (commit {args.float_commit}) against the shipped exact models; targets: "
                     f"{json.dumps(TARGETS)}\n{shown.to_string(index=False, float_format=lambda v: f'{v:.4f}')}\n"
                     f"rows: {args.out}\n")
    return 0
