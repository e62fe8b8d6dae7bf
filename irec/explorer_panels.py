"""The explorer's widget panels that need nothing of the codecs: the history of presses (a rate-quality plot, a
table, clear and CSV export) and the sweep of one parameter (its controls, progress, plot and table), with the
one-line help of every control. :class:`irec.explorer.ExplorerApp` puts them under its controls; the sweep's
coding is a callable it passes in (:func:`irec.explorer.sweep`)."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from irec.explorer_figures import rate_quality_png, sweep_png
from irec.explorer_results import SWEEPS, History, sweep_values

HELP = {  # one line per control, with the paper's symbol
    "start_from": "a named setting of irec.settings; reads custom once a control moves off it",
    "n_beams": "B: beams the search keeps; more find cheaper candidates, encode slower (paper: 20 lossless, 10 lossy)",
    "extra_samples": "1+ε: oversampling of the candidates, N = ⌊exp((1+ε)·Ω)⌋ per step",
    "kl_per_step": "Ω: nats of KL coded per step; each step sends one index of log2 N bits",
    "block_size": "latent dimensions per block; a block's KL is coded in about KL/Ω steps",
    "steps_per_block": "K_b: size the blocks to take about K_b steps each (0: the block size above, fixed)",
    "sampler": "beam: iREC's search; greedy: one beam (B = 1); sample: Gumbel-top-B",
    "refine_steps": "lossy models: the encoder's refinement steps of q(z1) before coding (0: none, as the paper)",
}
SWEEP_RANGES = {"kl_per_step": (2.0, 8.0), "n_beams": (1, 50), "extra_samples": (0.9, 1.6),
                "steps_per_block": (10.0, 80.0), "block_size": (128, 2048)}  # each parameter's default range
WIDE = {"style": {"description_width": "initial"}, "layout": {"width": "420px"}}  # no cut labels
SMALL = {"style": {"description_width": "initial"}, "layout": {"width": "160px"}}
RED = "#b00020"


def with_help(widget, key: str) -> widgets.HBox:
    """``widget`` with its one-line explanation (:data:`HELP`) beside it."""
    return widgets.HBox([widget, widgets.HTML(f'<span style="color:#555">{html.escape(HELP[key])}</span>')])


def section(title: str) -> widgets.HTML:
    return widgets.HTML(f"<h3 style='margin:12px 0 4px'>{html.escape(title)}</h3>")


def error_html(what: str, err: Exception) -> str:
    return f'<p style="color:{RED}"><b>{what}:</b> {html.escape(str(err))}</p>'


def picture(css_class: str, **layout) -> widgets.Image:
    """An image widget shown at its own size (not stretched by its box), found by ``css_class``."""
    return widgets.Image(format="png", layout={"align_self": "flex-start", "flex": "0 0 auto", "height": "auto",
                                               **layout}).add_class(css_class)


def show_png(image: widgets.Image, png: bytes | None) -> None:
    """Show ``png`` in ``image``, or hide the image (None: nothing to show, and nothing stale)."""
    image.value, image.layout.display = (png, "") if png else (b"", "none")


class HistoryPanel(widgets.VBox):
    """Every press: a rate-quality plot (``irec-rate-quality``), a table with one row per press
    (``irec-history``), and buttons to clear it (``irec-clear``) and export it as CSV (``irec-export``)."""

    def __init__(self, export_path: str = "explorer-history.csv",
                 references: Callable[[], pd.DataFrame] | None = None) -> None:
        self.history, self.export_path, self.find_references = History(), export_path, references
        self.references: pd.DataFrame | None = None  # other codecs on the image, drawn beside the presses
        self.references_button = widgets.Button(description="add references", disabled=references is None,
                                                 tooltip="the other models of this kind and the classical codecs "
                                                         "on this image (computed once, then cached)")
        self.references_button.add_class("irec-references")
        self.table = widgets.HTML().add_class("irec-history")
        self.plot = picture("irec-rate-quality")
        self.note = widgets.HTML().add_class("irec-history-note")
        self.clear_button = widgets.Button(description="clear history").add_class("irec-clear")
        self.export_button = widgets.Button(description="export CSV").add_class("irec-export")
        self.clear_button.on_click(self.clear)
        self.export_button.on_click(self.export)
        self.references_button.on_click(self.add_references)
        super().__init__([section("Every press"), self.plot, self.table,
                          widgets.HBox([self.clear_button, self.export_button, self.references_button, self.note])])
        self.add_class("irec-history-panel")
        self.refresh()

    def add(self, result, image: str) -> None:
        self.history.add(result, image)
        self.refresh()

    def refresh(self) -> None:
        table = self.history.html()
        if self.history.rows:
            data = base64.b64encode(self.history.to_csv().encode()).decode()
            table += (f'<a download="explorer-history.csv" href="data:text/csv;base64,{data}">'
                      "download the history as CSV</a>")
        self.table.value = table
        show_png(self.plot, rate_quality_png(self.history.frame(), self.references))

    def add_references(self, _button=None) -> pd.DataFrame | None:
        """The shipped models' points and the classical codecs' on the chosen image, drawn with the presses."""
        self.note.value = "coding the image with the other models and the classical codecs..."
        try:
            found = self.find_references()
        except (ValueError, RuntimeError) as err:
            self.note.value = error_html("No references", err)
            return None
        self.references = found if self.references is None else pd.concat(
            [self.references, found]).drop_duplicates(["label", "rate"])
        self.refresh()
        self.note.value = f"{found['label'].nunique()} references: dashed"
        return found

    def clear(self, _button=None) -> None:
        self.history.clear()
        self.references = None
        self.note.value = ""
        self.refresh()

    def export(self, _button=None) -> str:
        """Write the history to :attr:`export_path` as CSV; returns the path."""
        with open(self.export_path, "w", encoding="utf-8") as out:
            out.write(self.history.to_csv())
        self.note.value = (f"{len(self.history.rows)} presses written to "
                           f"<code>{html.escape(os.path.abspath(self.export_path))}</code>")
        return self.export_path


class SweepPanel(widgets.VBox):
    """One parameter over a range: ``run(parameter, values, on_value) -> DataFrame`` codes the image at each value
    (:func:`irec.explorer.sweep`); the panel shows progress (``irec-sweep-progress``), the plot
    (``irec-sweep-plot``) and the table (``irec-sweep-table``)."""

    def __init__(self, run: Callable[[str, list, Callable], pd.DataFrame]) -> None:
        self.run = run
        self.parameter = widgets.Dropdown(options=list(SWEEPS), description="sweep", **WIDE)
        self.start = widgets.FloatText(description="from", **SMALL).add_class("irec-sweep-from")
        self.stop = widgets.FloatText(description="to", **SMALL).add_class("irec-sweep-to")
        self.count = widgets.BoundedIntText(value=5, min=2, max=20, description="values", **SMALL)
        self.count.add_class("irec-sweep-count")
        self.button = widgets.Button(description="run sweep").add_class("irec-sweep-run")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="idle").add_class("irec-sweep-progress")
        self.plot = picture("irec-sweep-plot")
        self.table = widgets.HTML().add_class("irec-sweep-table")
        self.last: pd.DataFrame | None = None
        self.parameter.observe(self._default_range, names="value")
        self.button.on_click(self.sweep)
        super().__init__([section("Sweep one parameter"),
                          widgets.HBox([self.parameter, self.start, self.stop, self.count]),
                          widgets.HBox([self.button, self.progress]), self.plot, self.table])
        self.add_class("irec-sweep")
        self._default_range()
        show_png(self.plot, None)

    def _default_range(self, _change=None) -> None:
        self.start.value, self.stop.value = SWEEP_RANGES[SWEEPS[self.parameter.value]]

    def _step(self, i: int, value) -> None:
        self.progress.value, self.progress.description = i, f"{value:g}"

    def sweep(self, _button=None) -> pd.DataFrame | None:
        """Code the image at each value; plot the overhead, the gap to a posterior sample and the encode time."""
        self.last, self.table.value, self.progress.bar_style, self.progress.value = None, "", "", 0
        show_png(self.plot, None)
        parameter = self.parameter.value
        try:
            values = sweep_values(parameter, self.start.value, self.stop.value, self.count.value)
            self.progress.max = len(values)
            frame = self.run(parameter, values, self._step)
        except ValueError as err:
            self.table.value = error_html("Cannot sweep", err)
            self.progress.description, self.progress.bar_style = "failed", "danger"
            return None
        coded = frame[frame["error"] == ""]
        if not coded.empty:
            show_png(self.plot, sweep_png(coded, parameter))
        self.table.value = frame.to_html(index=False, float_format=lambda v: f"{v:.4g}")
        self.progress.value, self.progress.description, self.progress.bar_style = len(values), "done", "success"
        self.last = frame
        return frame
