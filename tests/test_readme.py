"""The README is a manual that runs: its Python examples execute, its links resolve, its table is the committed one.

Every fenced block opened with ```python is executed in a fresh namespace, one test per block; a block opened with
```python no-run is shown but not run (for an example that needs an API still being built, or too slow for a test).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from irec.paths import REPO

README = REPO / "README.md"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(info string, body, line number of the fence) of every fenced code block, in order."""
    return [(m["info"].strip(), m["body"], text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def python_examples(text: str) -> list[tuple[str, int]]:
    """(source, fence line) of every ```python block to run; ```python no-run blocks are left out."""
    examples = []
    for info, body, line in fenced_blocks(text):
        words = info.split()
        if words[:1] == ["python"] and "no-run" not in words[1:]:
            examples.append((body, line))
    return examples


def _example_id(example: tuple[str, int]) -> str:
    source, line = example
    first = next((s.strip() for s in source.splitlines() if s.strip() and not s.startswith("import")), "")
    return f"line{line}-{re.sub(r'[^A-Za-z0-9_.]+', '_', first)[:40]}"


EXAMPLES = python_examples(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples_to_run():
    assert EXAMPLES, "README.md has no ```python block: the examples this file runs are gone"


@pytest.mark.parametrize("example", EXAMPLES, ids=[_example_id(e) for e in EXAMPLES])
def test_the_readmes_python_example_runs(example, shared_data):
    source, line = example
    code = compile(source, f"README.md (the block at line {line})", "exec")
    exec(code, {"__name__": f"readme_example_line_{line}"})  # noqa: S102 (running the README's own examples)


def test_a_no_run_block_is_not_run_and_a_plain_block_is():
    text = "```python\nx = 1\n```\n\n```python no-run\nraise SystemExit\n```\n\n```bash\nls\n```\n"
    assert [source for source, _ in python_examples(text)] == ["x = 1\n"]


def missing_links(page: Path) -> list[str]:
    """The relative link targets of a markdown page (outside code blocks) that name no existing file."""
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))  # links inside code blocks are code, not links
    missing = []
    for m in LINK.finditer(prose):
        target = m["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor in the page itself
        if not (page.parent / unquote(target.split("#", 1)[0])).exists():
            missing.append(target)
    return missing


def test_every_relative_link_in_the_readme_points_to_an_existing_file():
    assert not missing_links(README), f"README.md links to files that do not exist: {missing_links(README)}"


DOC_PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "results" / "README.md"]


@pytest.mark.parametrize("page", DOC_PAGES, ids=[p.relative_to(REPO).as_posix() for p in DOC_PAGES])
def test_every_relative_link_in_the_docs_points_to_an_existing_file(page):
    assert not missing_links(page), f"{page.relative_to(REPO)} links to files that do not exist: {missing_links(page)}"


def _table_rows(markdown: str) -> dict[str, list[str]]:
    """Method -> cells of every markdown table row, cells stripped of backticks and markup."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip().strip("`*") for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_the_readmes_lossless_table_copies_the_committed_table():
    readme = _table_rows(README.read_text(encoding="utf-8"))
    committed = _table_rows((REPO / "results" / "tables" / "lossless_table.md").read_text(encoding="utf-8"))
    header = readme["method"]
    checked = 0
    encoders = [method for method in committed if method.startswith("iREC, encoder")]  # other encoder settings
    for method in ("PNG", "WebP", "JPEG XL lossless (FLIF stand-in)", "iREC", *encoders, "ELBO of the RVAE"):
        assert method in readme, f"the README's lossless table lacks the {method} row"
        for column, cell in zip(header, readme[method]):
            dataset, _, which = column.partition(" ")
            name = f"{dataset}: {'measured here' if which == 'measured' else 'paper (published)'}"
            assert name in committed["method"], f"the committed table has no column {name!r}"
            expected = committed[method][committed["method"].index(name)]
            if re.fullmatch(r"\[?[0-9.]+\]?", cell):
                assert cell == expected, f"README says {cell} for {method}, {column}; the committed table {expected}"
                checked += 1
    assert checked >= 10


LAYOUT = REPO / "docs" / "layout.md"


def _layout_sections(text: str) -> dict[str, str]:
    """docs/layout.md's module map: package folder ("" for irec/ itself) -> the text that describes its modules."""
    block = next(body for _, body, _ in fenced_blocks(text.split("## Every module", 1)[1]))
    sections: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("irec/"):
            current = ""
        elif line and not line[0].isspace():
            current = None  # past the package: notebooks/, results/, ...
        elif folder := re.match(r"^  ([a-z_]+)/", line):
            current = folder[1]
        if current is not None:
            sections[current] = sections.get(current, "") + line + "\n"
    return sections


def test_every_module_of_the_package_appears_in_the_layout_page():
    sections = _layout_sections(LAYOUT.read_text(encoding="utf-8"))
    absent = []
    for path in sorted((REPO / "irec").rglob("*.py")):
        parts = path.relative_to(REPO / "irec").parts
        folder = "" if len(parts) == 1 else parts[0]
        if folder and path.stem in ("__init__", "__main__") and folder != "codecs":
            continue  # a subpackage's own __init__ / __main__ need no line (codecs' __init__ holds make_codec)
        if not re.search(rf"(?<![\w.]){re.escape(path.stem)}(?!\w)", sections.get(folder, "")):
            absent.append(path.relative_to(REPO).as_posix())
    assert not absent, f"modules missing from docs/layout.md's module map: {absent}"
