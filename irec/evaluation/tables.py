"""The iREC paper's lossless table (Table 1, single-image bits per dimension), regenerated.

Flamich, Havasi & Hernandez-Lobato, NeurIPS 2020, Section 5 and Table 1: PNG, WebP, FLIF, IDF, LBB, BitSwap,
HiLLoC, iREC and the ELBO of the paper's RVAE on CIFAR-10, ImageNet32 and Kodak. Each dataset gets two
columns: "measured here" (only from this project's result CSVs) and "paper (published)" (only from
``irec/published/lossless_table.csv``); a published number never fills a measured cell.

Measured sources, relative to the results folder: classical codecs ``baselines/<dataset>.csv`` (via
:func:`irec.evaluation.results.lossless_summary`), iREC and its ELBO ``lossless/<dataset>.csv`` (columns ``bpd``: real
file bits, ``negative_elbo_bpd``: the model's negative ELBO; files that name it ``elbo_bpd`` are read through
``irec.evaluation.results.LEGACY_NAMES``); the smoke profile reads ``<dataset>-smoke.csv``.
Cells are mean per-image bits per dimension, formatted to three decimals. The iREC row and the ELBO row read the
files coded with the codec's default setting; files coded with another encoder setting (a named coder setting or the
refinement of the posteriors, :mod:`irec.codecs.refine`: ``python -m irec.evaluation.pipeline lossless --coder NAME
--refine-steps N``) get a row of their own below iREC's, one per setting (:func:`encoder_label`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from irec import provenance
from irec.paths import RESULTS
from irec.settings import LOSSLESS_DEFAULT
from irec.evaluation.results import results_path, MEASURED, ResultsFormatError, load_published_lossless, lossless_summary, read_rows


@dataclass(frozen=True)
class TableRow:
    """One row of the paper's Table 1 and where its measured cells come from."""

    label: str  # row label in the regenerated table
    paper_method: str  # the method's name in irec/published/lossless_table.csv
    codec: str  # classical codec measured here (irec.codecs.classical), "" when not a classical codec
    measured_column: str  # column of lossless/<dataset>.csv holding the measurement, "" when none


ROWS: tuple[TableRow, ...] = (
    TableRow("PNG", "PNG", "png", ""),
    TableRow("WebP", "WebP", "webp-lossless", ""),
    TableRow("JPEG XL lossless (FLIF stand-in)", "FLIF", "jpegxl-lossless", ""),
    TableRow("IDF", "IDF", "", ""),
    TableRow("LBB", "LBB", "", ""),
    TableRow("BitSwap", "BitSwap", "", ""),
    TableRow("HiLLoC", "HiLLoC", "", ""),
    TableRow("iREC", "iREC", "", "bpd"),
    TableRow("ELBO of the RVAE", "RVAE ELBO", "", "negative_elbo_bpd"),
)
_IREC = [row.label for row in ROWS].index("iREC")  # the other encoders' rows (encoder_label) follow this one
ENCODER = "iREC, encoder"  # label of the rows of files coded with another encoder setting (encoder_label)
_DEFAULT = ROWS[_IREC].label  # encoder_label of the codec's default setting: the iREC row itself
DATASETS: dict[str, str] = {"cifar10": "CIFAR-10", "imagenet32": "ImageNet32", "kodak": "Kodak"}
MEASURED_HERE = "measured here"
PAPER = "paper (published)"
NOT_RUN = "not run yet"
NOT_OFFLINE = "not run (dataset not available offline)"
PUBLISHED_ONLY = "published only"
NOT_REPORTED = "not reported"
OFFLINE_UNAVAILABLE = ("imagenet32",)  # datasets without an offline copy: a missing CSV means it cannot run here


@dataclass(frozen=True)
class LosslessTable:
    """The regenerated table (string cells) and what it was made from."""

    cells: pd.DataFrame  # one row per method; columns "method", then "<dataset>: measured here" / ": paper (published)"
    profile: str  # profile whose result files were read (smoke reads *-smoke.csv)
    n_images: dict[str, dict[str, int]] = field(default_factory=dict)  # dataset -> "baselines"/"irec" -> images
    models: tuple[str, ...] = ()  # iREC models named in the lossless result files
    row_commits: tuple[str, ...] = ()  # commits of the code that coded the rows it reads (their git_commit column),
    # not of the code that built it: rebuilding from the same rows gives the same table
    trained_on: dict[str, str] = field(default_factory=dict)  # dataset -> its iREC models and what they trained on
    # (the manifest's data), e.g. Kodak's photo model, whose training data differs from the paper's (ImageNet32)

    def caption(self) -> str:
        """One paragraph: what the table is, its units, the profile, models, images per dataset, the rows' commits."""
        counts = []
        for key, name in DATASETS.items():
            parts = [f"{n} ({source})" for source, n in self.n_images.get(key, {}).items()]
            counts.append(f"{name}: {', '.join(parts) if parts else 'none'}")
        models = ", ".join(self.models) if self.models else "no iREC model run yet"
        return (
            "Single-image lossless compression in bits per dimension (lower is better), as in Table 1 of Flamich "
            "et al. (NeurIPS 2020). 'measured here': mean over images of per-image real file sizes from this "
            "project's result CSVs; 'paper (published)': the paper's numbers (bits-back asymptotic cost in "
            "parentheses, ELBO in brackets). JPEG XL lossless stands in for FLIF, which has no encoder here. "
            f"Profile: {self.profile}. iREC models: {models}. {self._training()}Images measured: {'; '.join(counts)}. "
            f"{self._encoders()}Rows coded at git {', '.join(self.row_commits) or 'unknown'}."
        )


    def _encoders(self) -> str:
        if not any(str(label).startswith(ENCODER) for label in self.cells["method"]):
            return ""
        return ("'iREC, encoder: ...': the same model, decoder and file format as 'iREC', another encoder setting: "
                "B beams, steps of Omega nats with e^((1+eps) Omega) candidates each, blocks of that many dimensions "
                "(irec.coder), or q refined: N Adam steps on every level's posterior for the coded rate before coding "
                "(irec.codecs.refine), which the paper does not do. ")

    def _training(self) -> str:
        parts = [f"{DATASETS[key]}: {text}" for key, text in self.trained_on.items()]
        return f"Trained on: {'; '.join(parts)}. " if parts else ""


PAPER_TRAINING = {"kodak": "the paper's Kodak model was trained on ImageNet32"}  # where ours differs from the paper


def _trained_on(models: list[str], dataset: str) -> str:
    """``models`` (names) with the training data their manifest entries record (its first clause), and how the
    paper's model for ``dataset`` differs."""
    from irec import zoo

    data = {m["name"]: str(m.get("data", "")).split(";")[0].strip() for m in zoo.list_models()}
    named = [f"{name} ({data[name]})" if data.get(name) else name for name in models]
    return ", ".join(named + ([PAPER_TRAINING[dataset]] if dataset in PAPER_TRAINING else []))


def column(dataset_name: str, kind: str) -> str:
    """The table column of a dataset's measured or published cells, e.g. ``"Kodak: measured here"``."""
    return f"{dataset_name}: {kind}"


def _number(value: float) -> str:
    return f"{value:.3f}"


def _published_cell(published: pd.DataFrame, method: str, dataset: str) -> str:
    rows = published[published["method"] == method].set_index("variant")[dataset]
    value = {variant: float(v) for variant, v in rows.items() if not math.isnan(float(v))}
    if "single_image" in value:
        text = f"{value['single_image']:.2f}"
        return f"{text} ({value['asymptotic']:.2f})" if "asymptotic" in value else text
    if "elbo" in value:
        return f"[{value['elbo']:.2f}]"
    return NOT_REPORTED


def _missing(dataset: str) -> str:
    return NOT_OFFLINE if dataset in OFFLINE_UNAVAILABLE else NOT_RUN


def lossless_table(results_dir: str | Path = "", profile: str = "cpu") -> LosslessTable:
    """Build the table from the result CSVs under ``results_dir`` (``irec.paths.RESULTS`` when empty)."""
    results_dir = Path(results_dir) if str(results_dir) else RESULTS
    published = load_published_lossless()
    measured: dict[tuple[str, str], str] = {}
    n_images: dict[str, dict[str, int]] = {}
    models: list[str] = []
    commits: set[str] = set()
    trained_on: dict[str, str] = {}
    encoders: set[str] = set()
    for dataset in DATASETS:
        baselines = results_path("baselines", dataset, profile, results_dir)
        summary = lossless_summary(read_rows(baselines), published) if baselines.is_file() else pd.DataFrame()
        if not summary.empty:
            n_images.setdefault(dataset, {})["baselines"] = int(summary["n_images"].max())
        irec_path = results_path("lossless", dataset, profile, results_dir)
        irec_rows = read_rows(irec_path) if irec_path.is_file() else None
        for rows in (read_rows(baselines) if baselines.is_file() else None, irec_rows):
            if rows is not None and "git_commit" in rows.columns:
                commits.update(str(c)[:12] for c in rows["git_commit"].dropna().astype(str) if c)
        if irec_rows is not None:
            irec_rows, others = _by_encoder(irec_rows)
            encoders.update(others)
            n_irec = n_images.setdefault(dataset, {})["irec"] = _count(irec_rows)
            for label, rows in others.items():
                measured[(label, dataset)] = _number(float(rows["bpd"].mean())) + _share(_count(rows), n_irec)
            if "model" in irec_rows.columns:
                used = list(irec_rows["model"].astype(str).unique())
                models.extend(m for m in used if m not in models)
                trained_on[dataset] = _trained_on(used, dataset)
        for row in ROWS:
            if row.codec:
                match = summary[summary["codec"] == row.codec] if not summary.empty else summary
                if match.empty:
                    cell = NOT_RUN if baselines.is_file() else _missing(dataset)
                else:
                    cell = _number(float(match.iloc[0][MEASURED]))
                    if not bool(match.iloc[0]["all_bit_exact"]):
                        cell += " (not bit-exact)"
            elif row.measured_column:
                if irec_rows is None:
                    cell = _missing(dataset)
                elif irec_rows.empty:
                    cell = NOT_RUN
                elif row.measured_column not in irec_rows.columns:
                    raise ResultsFormatError(f"{irec_path} lacks the column {row.measured_column!r}; "
                                             "an iREC lossless results file needs columns bpd and "
                                             "negative_elbo_bpd (irec.evaluation.lossless)")
                else:
                    cell = _number(float(irec_rows[row.measured_column].mean()))
            else:
                cell = PUBLISHED_ONLY
            measured[(row.label, dataset)] = cell
    encoder_rows = [TableRow(label, "", "", "bpd") for label in sorted(encoders)]
    rows = [*ROWS[:_IREC + 1], *encoder_rows, *ROWS[_IREC + 1:]]
    records = []
    for row in rows:
        record = {"method": row.label}
        for dataset, name in DATASETS.items():
            record[column(name, MEASURED_HERE)] = measured.get((row.label, dataset), _missing(dataset))
            record[column(name, PAPER)] = _published_cell(published, row.paper_method, dataset)
        records.append(record)
    return LosslessTable(pd.DataFrame(records), profile, n_images, tuple(models), tuple(sorted(commits)), trained_on)


def _count(rows: pd.DataFrame) -> int:
    """How many images a results file's rows cover."""
    return int(rows["image"].nunique() if "image" in rows.columns else len(rows))


def _share(count: int, of: int) -> str:
    """The suffix ' (12 of 24 images)' when another encoder's rows cover fewer images than the iREC row's (a run
    still going, or stopped), so that a mean over other images says so; empty otherwise."""
    return f" ({count} of {of} images)" if 0 < count < of else ""


def encoder_label(n_beams: int, kl_per_step: float, extra_samples: float, block_size: int, refine_steps: int) -> str:
    """The row of iREC files coded with another encoder setting than the codec's default: what differs, e.g.
    ``iREC, encoder: B = 150, Omega = 6, q refined (100 steps)``; ``iREC`` for the default."""
    d = LOSSLESS_DEFAULT
    parts = [f"{name} = {value:g}" for name, value, default in (
        ("B", n_beams, d.n_beams), ("Omega", kl_per_step, d.kl_per_step), ("1+eps", extra_samples, d.extra_samples),
        ("blocks of", block_size, d.block_size)) if value != default]
    parts += [f"q refined ({refine_steps} steps)"] if refine_steps else []
    return f"{ENCODER}: {', '.join(parts)}" if parts else _DEFAULT


def _by_encoder(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """An iREC results file's rows coded with the codec's default search setting and no refinement (the iREC row;
    the search's KL floor, which changes files by about 0.04%, is not told apart), and the others by
    :func:`encoder_label`. Files without the setting's columns hold only the former."""
    columns = ["n_beams", "kl_per_step", "extra_samples", "block_size", "refine_steps"]
    if not set(columns) <= set(rows.columns):
        return rows, {}
    values = rows[columns].apply(pd.to_numeric, errors="coerce")
    values = values.fillna({"refine_steps": 0})
    labels = pd.Series([encoder_label(int(b), float(o), float(e), int(k), int(r)) for b, o, e, k, r in
                        values.to_numpy()], index=rows.index)
    others = {label: rows[labels == label] for label in labels.unique() if label != _DEFAULT}
    return rows[labels == _DEFAULT], others


def to_markdown(table: LosslessTable) -> str:
    """A GitHub Markdown table under a caption paragraph."""
    frame = table.cells
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in values) + " |" for values in frame.itertuples(index=False)]
    return "\n".join([f"**Lossless compression (bits per dimension).** {table.caption()}", "", header, rule, *body, ""])


def _tex(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def to_latex(table: LosslessTable) -> str:
    """A booktabs ``table`` environment: two sub-columns per dataset, the caption from :meth:`caption`."""
    frame = table.cells
    groups = " & ".join(rf"\multicolumn{{2}}{{c}}{{{name}}}" for name in DATASETS.values())
    rules = " ".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(DATASETS)))
    subs = " & ".join([_tex(MEASURED_HERE), _tex(PAPER)] * len(DATASETS))
    body = [" & ".join(_tex(str(v)) for v in values) + r" \\" for values in frame.itertuples(index=False)]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small",
        rf"\caption{{{_tex(table.caption())}}}", r"\label{tab:lossless}",
        r"\begin{tabular}{l" + "rr" * len(DATASETS) + "}", r"\toprule",
        rf"method & {groups} \\", rules, rf" & {subs} \\", r"\midrule", *body,
        r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
    ])


def write_table(table: LosslessTable, out_dir: str | Path = "") -> dict[str, Path]:
    """Write ``lossless_table.{csv,md,tex}`` (``-smoke`` suffix for the smoke profile) under ``out_dir``.

    ``out_dir`` defaults to ``results/tables``. The CSV starts with ``#`` comment lines holding the caption.
    Returns the paths by format.
    """
    out_dir = Path(out_dir) if str(out_dir) else RESULTS / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "lossless_table-smoke" if table.profile == "smoke" else "lossless_table"
    paths = {fmt: out_dir / f"{stem}.{fmt}" for fmt in ("csv", "md", "tex")}
    with open(paths["csv"], "w", newline="") as f:
        f.write(f"# {table.caption()}\n")
        table.cells.to_csv(f, index=False)
    paths["md"].write_text(to_markdown(table))
    paths["tex"].write_text(to_latex(table))
    return paths
