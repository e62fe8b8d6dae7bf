"""The reproducibility suite: execute the numbered notebooks with papermill, in order, resumably.

``./run_all.sh [--profile smoke|cpu|paper] [--only STEP ...] [--train] [--force]`` calls :func:`main`.
Each notebook in ``notebooks/`` is one step, named by its number (``03``) or its name (``baselines``). An
executed copy goes to ``results/executed/<profile>/``; a step that finished is recorded in a small JSON
marker beside it (parameters, seconds, commit, and the hashes of its inputs) and skipped on a re-run with the
same parameters and inputs unless ``--force``, so an interrupted run loses nothing; a step that codes a dataset
(a ``resume`` parameter) also keeps the rows an interrupted run of it wrote with the same commit, unless forced.
A step's inputs are the notebook itself and the repository files matching the glob patterns in its metadata
``irec.inputs`` (e.g. ``models/manifest.json`` for the steps that use the shipped models, the result CSVs for the
table and plots): shipping a model or re-coding a dataset re-runs the steps that read them. A failing step stops
the run and names the notebook and the cell that failed. Every run appends to
``results/logs/run_all-<profile>.log``; each step prints one line when it starts and one with its elapsed time
when it ends (papermill's own INFO lines are quieted), and ``--list`` shows how long each step took last time.

The kernels talk to the runner over local IPC sockets (:class:`IPCKernelManager`) rather than jupyter's default
TCP on localhost, which ipykernel warns about as unencrypted ("Kernel is running over TCP without encryption").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from irec import provenance
from irec.evaluation.progress import duration, follow
from irec.paths import NOTEBOOKS, REPO, RESULTS

log = logging.getLogger("irec.evaluation.suite")

PROFILES = ("smoke", "cpu", "paper")
PROFILE_HELP = {
    "smoke": "tiny models and a few images: a check that everything runs (minutes; CI runs it)",
    "cpu": "the default: committed CPU checkpoints, all of Kodak, >= 1,000 CIFAR-10 test images",
    "paper": "the paper's settings (model sizes, training steps, data): for a GPU",
}


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel listens on IPC (Unix domain) sockets in a private temporary folder.

    jupyter's default transport is TCP on localhost, for which ipykernel 7 logs "Kernel is running over TCP
    without encryption ..." at every start. Here runner and kernel are always on the same machine, so the
    sockets go in a fresh ``mkdtemp`` folder (mode 0700, readable by this user only; an absolute path, so
    nothing lands in ``notebooks/``, the kernel's working directory), removed when the kernel shuts down.
    """

    @default("transport")
    def _default_transport(self) -> str:
        return "tcp" if os.name == "nt" else "ipc"  # no Unix domain sockets for zmq on Windows: jupyter's default

    def _ip_default(self) -> str:  # for ipc, the path prefix of the sockets (<prefix>-1 ... <prefix>-5)
        if self.transport != "ipc":
            return super()._ip_default()
        self._socket_dir = tempfile.mkdtemp(prefix="irec-kernel-")
        return os.path.join(self._socket_dir, "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        folder = getattr(self, "_socket_dir", None)
        if folder and not restart:
            shutil.rmtree(folder, ignore_errors=True)


def quiet_papermill() -> None:
    """Keep papermill's INFO lines ("Input Notebook: ..." once from inspecting the parameters and once from
    executing, "Output Notebook", "Executing notebook with kernel") out of the run's output and log: the suite
    prints its own line per step. Its warnings and errors still show."""
    logging.getLogger("papermill").setLevel(logging.WARNING)



@dataclass(frozen=True)
class Step:
    """One notebook of the suite."""

    number: str  # two-digit run-order prefix, e.g. "03"
    name: str  # the rest of the file name, e.g. "baselines"
    path: Path  # the source notebook (committed without outputs)

    @property
    def label(self) -> str:
        return f"{self.number}_{self.name}"


def discover(folder: Path = NOTEBOOKS) -> list[Step]:
    """The numbered notebooks ``NN_name.ipynb`` in run order."""
    steps = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        number, name = path.stem.split("_", 1)
        steps.append(Step(number, name, path))
    return steps


def select(steps: list[Step], only: list[str] | None) -> list[Step]:
    """The steps named by number or name (all when ``only`` is empty); unknown names are an error."""
    if not only:
        return steps
    chosen = []
    for key in only:
        match = [s for s in steps if key in (s.number, s.name, s.label, s.number.lstrip("0"))]
        if not match:
            known = ", ".join(s.label for s in steps)
            raise ValueError(f"unknown step {key!r}; the steps are: {known}")
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen, key=lambda s: s.number)


def _marker(out_dir: Path, step: Step) -> Path:
    return out_dir / f"{step.label}.done.json"


def last_run(step: Step, out_dir: Path) -> dict | None:
    """The done-marker of the step's last finished run in ``out_dir`` (seconds, timestamp, commit, ...), or None."""
    marker = _marker(out_dir, step)
    try:
        return json.loads(marker.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def listing(steps: list[Step], out_dir: Path, profile: str) -> str:
    """One line per step: its label and how long its last finished run of ``profile`` took, and when."""
    width = max((len(s.label) for s in steps), default=0)
    lines, total, known = [], 0.0, 0
    for step in steps:
        done = last_run(step, out_dir)
        if done is None or "seconds" not in done:
            lines.append(f"{step.label:<{width}}  not run yet ({profile})")
            continue
        total += float(done["seconds"])
        known += 1
        when = str(done.get("timestamp", ""))[:16].replace("T", " ")
        commit, _, dirty = str(done.get("git_commit", "")).partition("+")
        commit = commit[:7] + (f"+{dirty}" if dirty else "")
        extra = ", ".join(x for x in (when, f"commit {commit}" if commit else "") if x)
        took = duration(float(done["seconds"]))
        lines.append(f"{step.label:<{width}}  {took:>12}" + (f"  ({extra})" if extra else ""))
    lines.append(f"{'total':<{width}}  {duration(total):>12}  ({known} of {len(steps)} step(s) with a finished "
                 f"run of profile {profile}, last time each)")
    return "".join(f"{line}\n" for line in lines)


def step_inputs(step: Step, root: Path = REPO) -> dict[str, str]:
    """sha256 of the notebook and of every file under ``root`` matching its metadata's ``irec.inputs`` patterns."""
    patterns = json.loads(step.path.read_text()).get("metadata", {}).get("irec", {}).get("inputs", [])
    files = {step.path.name: step.path}
    for pattern in patterns:
        files.update({str(p.relative_to(root)): p for p in sorted(root.glob(pattern)) if p.is_file()})
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in sorted(files.items())}


def run_step(step: Step, profile: str, train: bool, out_dir: Path, force: bool, root: Path = REPO,
             workers: int = 0) -> float | None:
    """Execute one notebook; returns its seconds, or None when skipped as already done (same parameters and
    inputs, :func:`step_inputs` under ``root``). ``workers`` goes to the coding steps (0: one per core); like
    ``resume`` it is not part of what makes a step done, since the rows do not depend on it."""
    import papermill

    quiet_papermill()
    declared = papermill.inspect_notebook(str(step.path))
    parameters = {k: v for k, v in {"profile": profile, "train": train}.items() if k in declared}
    # a coding step resumes an interrupted run of itself image by image, unless forced (not part of the marker)
    resume = {"resume": not force} if "resume" in declared else {}
    if "workers" in declared:
        resume["workers"] = workers
    marker = _marker(out_dir, step)
    inputs = step_inputs(step, root)
    if not force and marker.exists():
        done = json.loads(marker.read_text())
        before = done.get("inputs", {})
        if done.get("parameters") == parameters and before == inputs:
            log.info("[%s] already done (delete %s or pass --force to redo)", step.label, marker.name)
            return None
        changed = sorted(k for k in {*inputs, *before} if inputs.get(k) != before.get(k))
        log.info("[%s] runs again: %s changed since it was done", step.label,
                 "its parameters" if done.get("parameters") != parameters else ", ".join(changed))
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / step.path.name
    previous = last_run(step, out_dir)
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    took = f" (took {duration(float(previous['seconds']))} last time)" if previous and "seconds" in previous else ""
    log.info("[%s] running %s%s", step.label, step.path.name, took)
    progress = out_dir / f"{step.label}.progress.log"  # the kernel's progress lines, relayed to the log
    try:
        with follow(progress, lambda line: log.info("[%s] %s", step.label, line)):
            papermill.execute_notebook(
                str(step.path), str(output), parameters={**parameters, **resume}, kernel_name="python3",
                cwd=str(step.path.parent), progress_bar=False, log_output=False, kernel_manager_class=IPCKernelManager,
            )
    except papermill.PapermillExecutionError as err:
        raise RuntimeError(
            f"step {step.label} failed in cell In [{err.exec_count}] (index {err.cell_index} of the executed "
            f"notebook) with {err.ename}: {err.evalue}; the executed notebook with the traceback is {output}"
        ) from err
    seconds = time.perf_counter() - start
    record = {"parameters": parameters, "inputs": inputs, "seconds": round(seconds, 1), **provenance.stamp()}
    marker.write_text(json.dumps(record, indent=1))
    log.info("[%s] done in %s", step.label, duration(seconds))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run_all.sh",
        description="Run the irec reproducibility suite: execute the numbered notebooks with papermill, in order. "
        "Finished steps are skipped on a re-run (an interrupted run resumes where it stopped).",
        epilog="Profiles: " + "; ".join(f"{k}: {v}" for k, v in PROFILE_HELP.items()),
    )
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="which settings to run (default: cpu)")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (number or name)")
    parser.add_argument("--train", action="store_true", help="retrain models instead of using committed checkpoints")
    parser.add_argument("--force", action="store_true", help="re-run steps that already finished")
    parser.add_argument("--workers", type=int, default=0, help=(
        "worker processes of the coding steps 03-05 (default 0: one per available core; the files are the same "
        "whatever the count)"))
    parser.add_argument("--list", action="store_true",
                        help="list the steps with how long each took last time (of --profile) and exit")
    args = parser.parse_args(argv)

    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(logs / f"run_all-{args.profile}.log")],
    )
    quiet_papermill()
    steps = discover()
    out_dir = RESULTS / "executed" / args.profile
    if args.list:
        sys.stdout.write(listing(steps, out_dir, args.profile))
        return 0
    try:
        chosen = select(steps, args.only)
    except ValueError as err:
        parser.error(str(err))
    log.info("profile %s, %d step(s), commit %s", args.profile, len(chosen), provenance.git_commit())
    total = time.perf_counter()
    for step in chosen:
        try:
            run_step(step, args.profile, args.train, out_dir, args.force, workers=args.workers)
        except RuntimeError as err:
            log.error("%s", err)
            return 1
    log.info("all %d step(s) done in %s; executed notebooks in %s", len(chosen), duration(time.perf_counter() - total),
             out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
