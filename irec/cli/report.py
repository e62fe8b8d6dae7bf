"""What ``irec compress``, ``irec decompress`` and ``irec info`` print: short reports, the same layout for both kinds.

docs/irec-method.md section 4 ("Report, per image"): the real rate from the file's length beside the ideal rate
(KL of each latent level, and for lossless pixels -log2 p(x | z)), labelled as ideal, and the bits of each part.
The rate is in the paper's unit for each kind: bits per dimension (bpd) for lossless, bits per pixel (bpp) for
lossy. No line is much longer than :data:`WIDTH` characters; the many latent levels of the lossless RVAE are
shown as one "latents" part.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

from irec.metrics import ms_ssim_db

WIDTH = 100  # the longest line a report aims at (the model table: 120)
MOST_LEVELS_SHOWN = 3  # more latent levels than this are summed into one "latents" part
LABEL = 9  # width of a report line's label ("  rate:   ")


def _number(x: float) -> str:
    return f"{x:,.0f}"


def _wrap(label: str, items: list[str], lead: str = "") -> list[str]:
    """``label:``, then ``lead`` and the items joined by ", ", continued on indented lines rather than past WIDTH."""
    first = f"  {label + ':':<{LABEL}}" + (lead + " " if lead else "")
    indent = " " * (2 + LABEL)
    lines, line, fresh = [], first, True
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if not fresh and len(line) + 1 + len(piece) > WIDTH:
            lines.append(line)
            line, fresh = indent, True
        line += ("" if fresh else " ") + piece
        fresh = False
    return lines + [line.rstrip()]


@dataclass(frozen=True)
class Compressed:
    """What ``irec compress`` made of one image: the facts its report shows (small, so workers can return it)."""

    output: str
    source: str
    kind: str  # "lossless" / "lossy"
    height: int
    width: int
    n_bytes: int
    bits: dict[str, float]  # real bits per part (irec.codecs.encoding)
    ideal_bits: dict[str, float]  # ideal bits per latent level (KL) and, lossless, of the pixels
    seconds: float  # encode time
    verified: bool
    model: str | None = None
    negative_elbo_bpd: float | None = None  # lossless
    psnr_db: float | None = None  # lossy
    ms_ssim: float | None = None  # lossy, when the image is large enough for five scales
    notes: tuple[str, ...] = field(default=())  # about the coder setting, e.g. the lossy low-rate one

    @property
    def unit(self) -> str:
        return "bpd" if self.kind == "lossless" else "bpp"

    def per_unit(self, bits: float) -> float:
        """``bits`` in the kind's unit: per dimension (3 per pixel) for lossless, per pixel for lossy."""
        return bits / (self.height * self.width * (3 if self.kind == "lossless" else 1))

    @property
    def rate(self) -> float:
        return self.per_unit(8.0 * self.n_bytes)

    @property
    def ideal_rate(self) -> float:
        return self.per_unit(sum(self.ideal_bits.values()))

    def parts(self) -> list[str]:
        """"part real / ideal" bits for each part ("-": no ideal), the latent levels summed into one "latents"
        part when there are more than MOST_LEVELS_SHOWN."""
        levels = [p for p in self.bits if p not in ("header", "pixels", "tail")]
        shown: list[tuple[str, float, float | None]] = []
        for part, bits in self.bits.items():
            if part in levels and len(levels) > MOST_LEVELS_SHOWN:
                if part == levels[0]:
                    shown.append(("latents", sum(self.bits[p] for p in levels),
                                  sum(self.ideal_bits.get(p, 0.0) for p in levels)))
                continue
            shown.append((part, bits, self.ideal_bits.get(part)))
        return [f"{part} {_number(real)} / {'-' if ideal is None else _number(ideal)}" for part, real, ideal in shown]

    def ideal_label(self) -> str:
        return "KL + -log2 p(x|z)" if "pixels" in self.ideal_bits else "KL"

    def quality(self) -> str:
        if self.kind == "lossless":
            return "lossless (the file decodes to the input exactly)"
        text = f"PSNR {self.psnr_db:.2f} dB" if self.psnr_db is not None else "PSNR not measured"
        if self.ms_ssim is not None and not math.isnan(self.ms_ssim):
            text += f", MS-SSIM {self.ms_ssim:.4f} ({ms_ssim_db(self.ms_ssim):.2f} dB)"
        return text

    def report(self) -> str:
        """The multi-line report of one file."""
        model = f", model {self.model}" if self.model else ""
        rate = [f"real {self.rate:.4f} {self.unit}", f"ideal {self.ideal_rate:.4f} {self.unit} ({self.ideal_label()})"]
        if self.negative_elbo_bpd is not None:
            rate.append(f"-ELBO {self.negative_elbo_bpd:.4f} bpd")
        time = [f"encoded in {self.seconds:.2f} s", "verified by decoding" if self.verified else
                "not verified (--no-verify)"]
        return "\n".join([
            f"{self.output}: {self.n_bytes:,} bytes, {self.kind} {self.width}x{self.height} image from "
            f"{self.source}{model}",
            *_wrap("rate", rate),
            *_wrap("parts", self.parts(), lead="real/ideal bits:"),
            *_wrap("quality", [self.quality()]),
            *(_wrap("coder", list(self.notes)) if self.notes else []),
            *_wrap("time", time),
        ])

    def line(self) -> str:
        """One short line, for a folder of images."""
        quality = f", PSNR {self.psnr_db:.2f} dB" if self.psnr_db is not None else ""
        checked = "" if self.verified else " (not verified)"
        return (f"{self.output}: {self.n_bytes:,} bytes, {self.rate:.4f} {self.unit} (ideal {self.ideal_rate:.4f})"
                f"{quality}, {self.seconds:.2f} s{checked}")


def compress_summary(done: list[Compressed], n_files: int, seconds: float) -> str:
    """The last line for a folder: files, total bytes, mean rate (of the images' rates), elapsed time."""
    head = f"{len(done)} of {n_files} files coded" if len(done) < n_files else f"{n_files} files coded"
    if not done:
        return f"{head}, in {seconds:.1f} s"
    units = {c.unit for c in done}
    unit = units.pop() if len(units) == 1 else "bpp"
    rates = [c.rate if c.unit == unit else 8.0 * c.n_bytes / (c.height * c.width) for c in done]
    psnrs = [c.psnr_db for c in done if c.psnr_db is not None and math.isfinite(c.psnr_db)]
    quality = f", mean PSNR {sum(psnrs) / len(psnrs):.2f} dB" if psnrs else ""
    ideal = [c.ideal_rate for c in done] if all(c.unit == unit for c in done) else []
    ideal_text = f" (ideal {sum(ideal) / len(ideal):.4f})" if ideal else ""
    return (f"{head}: {sum(c.n_bytes for c in done):,} bytes, mean {sum(rates) / len(rates):.4f} {unit}{ideal_text}"
            f"{quality}, "
            f"in {seconds:.1f} s")


@dataclass(frozen=True)
class Decompressed:
    """What ``irec decompress`` wrote for one file."""

    output: str
    source: str
    height: int
    width: int
    model: str
    seconds: float  # decode time (the model's loading not included)
    tiles: int = 1  # the file's tiles (1: an ordinary file)
    damaged: tuple[str, ...] = ()  # irec decompress --salvage: the damaged tiles' pixels, in words, filled with zeros

    def line(self) -> str:
        tiles = f" in {self.tiles} tiles" if self.tiles > 1 else ""
        lost = f", {len(self.damaged)} damaged tile(s) filled with zeros" if self.damaged else ""
        return (f"{self.output}: {self.width}x{self.height} RGB image from {self.source}{tiles} ({self.model}), "
                f"decoded in {self.seconds:.2f} s{lost}")

    def damage_report(self) -> str:
        """What ``--salvage`` lost (for stderr): one line naming the file, then one per damaged tile."""
        head = (f"{self.source}: {len(self.damaged)} of {self.tiles} tiles damaged, filled with zeros in "
                f"{self.output}:")
        return "\n".join([head, *(f"  lost tile: {box}" for box in self.damaged)])


def decompress_summary(done: list[Decompressed], n_files: int, folder: str, seconds: float) -> str:
    head = f"{len(done)} of {n_files} files" if len(done) < n_files else f"{n_files} files"
    return f"{head} decoded into {folder}, in {seconds:.1f} s"


# ------------------------------------------------------------------------------------------------------ models
def _steps(m: dict) -> str:
    base = (m.get("finetuned_from") or {}).get("steps")
    steps = m.get("steps")
    if steps is None:
        return "-"
    return f"{base}+{steps}" if base else str(steps)


def key_figures(m: dict) -> str:
    """One or two measured figures of a model: CIFAR-10 bpd (lossless), Kodak bpp and PSNR (lossy), else the
    first two numbers of its figures."""
    f = m.get("figures") or {}
    if "cifar10_test_bpd" in f:
        elbo = f.get("cifar10_test_negative_elbo_bpd")
        return f"CIFAR-10 {f['cifar10_test_bpd']} bpd" + (f" (-ELBO {elbo})" if elbo is not None else "")
    if "kodak_bpp" in f:
        psnr = f.get("kodak_psnr_db")
        return f"Kodak {f['kodak_bpp']} bpp" + (f", PSNR {psnr} dB" if psnr is not None else "")
    numbers = [f"{k}={v}" for k, v in f.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(numbers[:2]) or "-"


MODEL_COLUMNS = (("NAME", "name"), ("KIND", "kind"), ("SOURCE", "source"), ("FINGERPRINT", "fingerprint"),
                 ("STEPS", "steps"), ("MEASURED", "figures"))


def models_table(models: list[dict]) -> str:
    """The shipped and cached models as a table with a header, columns aligned, lines of at most 120 characters."""
    rows = [[str(m.get("name", "")), str(m.get("kind", "")), str(m.get("source", "")),
             str(m.get("fingerprint") or "")[:8] or "-", _steps(m), key_figures(m)] for m in models]
    header = [title for title, _ in MODEL_COLUMNS]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(r[:-1], widths)), r[-1]]).rstrip() for r in [header, *rows]]
    return "\n".join(line if len(line) <= 120 else line[:117] + "..." for line in lines)


def model_entry(m: dict) -> str:
    """One model's whole registry entry, a key: value line each (figures one per line), long texts wrapped."""
    lines = []
    for key, value in m.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [_field(f"  {k}", v) for k, v in value.items()]
        else:
            lines.append(_field(key, value))
    return "\n".join(lines)


def _field(key: str, value) -> str:
    text = "-" if value is None else str(value)
    return textwrap.fill(text, WIDTH, initial_indent=f"{key}: ".ljust(24), subsequent_indent=" " * 24,
                         break_on_hyphens=False)
