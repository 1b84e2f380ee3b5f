"""Generate the bundled sample corpus in samples/ (deterministic; run from anywhere).

    .venv/bin/python scripts/make_samples.py

Each file holds a few facts on distinct topics, so the demo and the tests can search for a
phrase and expect that file. The facts are listed in samples/.README.md: a hidden file,
because ingesting samples/ skips hidden files, and a visible README quoting the facts would
be ingested too and outrank the very documents it describes. Re-running gives identical
bytes: the PDF and DOCX carry fixed dates, and the DOCX archive gets fixed entry times.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import docx
from fpdf import FPDF

OUT = Path(__file__).resolve().parents[1] / "samples"
FIXED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FILLER = (
    "This section continues with background material, definitions and worked examples "
    "so that the page reads like a real handbook rather than a single sentence. "
)

# One page per topic; tests check that each fact is found on its page. Keep 3 pages: the
# LlamaParse tests bill exactly 3.
PDF_PAGES = [
    ("Oceans", "The Great Barrier Reef is the largest coral reef system on Earth, visible from orbit."),
    ("Sky", "The aurora borealis is caused by charged solar particles striking the upper atmosphere."),
    ("Pantry", "Honey never spoils because its low moisture and high acidity stop bacteria from growing."),
]

DOCX_FACTS = [
    "Let the sourdough dough rest for twelve hours in a cool place before baking.",
    "Feed the starter with equal weights of flour and water every morning.",
    "Sterilise jam jars in a 120 degree oven for twenty minutes before filling them.",
]

HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Garden guide</title>
<style>body { font-family: serif; }</style><script>console.log("not content");</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Vegetable garden guide</h1>
<h2>Tomatoes</h2><p>Tomatoes need at least six hours of direct sunlight every day to ripen well.</p>
<h2>Compost</h2><p>A compost heap should be turned every two weeks so that air reaches the centre.</p>
<ul><li>Green waste adds nitrogen.</li><li>Brown waste such as dry leaves adds carbon.</li></ul>
<h2>Frost</h2><p>Plant courgettes outdoors only after the last spring frost, usually in late May.</p>
</body></html>
"""
HTML_FACTS = [
    "Tomatoes need at least six hours of direct sunlight every day to ripen well.",
    "A compost heap should be turned every two weeks so that air reaches the centre.",
    "Plant courgettes outdoors only after the last spring frost, usually in late May.",
]

MARKDOWN = """# Release notes

## Version 2.4

- Version 2.4 adds resumable uploads for files larger than one gigabyte.
- The search page now remembers the last ten queries.

```bash
# upgrading
pip install --upgrade example-app==2.4
```

## Version 2.3

Version 2.3 removed the legacy XML export, replaced by JSON Lines files.
"""
MARKDOWN_FACTS = [
    "Version 2.4 adds resumable uploads for files larger than one gigabyte.",
    "The search page now remembers the last ten queries.",
    "Version 2.3 removed the legacy XML export, replaced by JSON Lines files.",
]

TEXT = """Team notes, week 12

The meeting about the lighthouse restoration moved to Thursday at nine.
Bring the survey of the lantern room; the glazing contractor will join by phone.

Reminder: the harbour museum closes early on public holidays.
"""
TEXT_FACTS = [
    "The meeting about the lighthouse restoration moved to Thursday at nine.",
    "Reminder: the harbour museum closes early on public holidays.",
]


def make_pdf(path: Path) -> None:
    pdf = FPDF()
    pdf.set_creation_date(FIXED)
    pdf.set_title("Field Handbook")
    for title, fact in PDF_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, fact + " " + FILLER * 3)
    pdf.output(str(path))


def make_docx(path: Path) -> None:
    d = docx.Document()
    props = d.core_properties
    props.created = props.modified = FIXED.replace(tzinfo=None)
    props.author = props.last_modified_by = "ingestflow"
    props.revision = 1
    d.add_heading("Kitchen Notebook", level=0)
    d.add_heading("Sourdough", level=1)
    d.add_paragraph(DOCX_FACTS[0])
    d.add_paragraph(DOCX_FACTS[1], style="List Bullet")
    d.add_heading("Ingredients", level=2)
    table = d.add_table(rows=3, cols=2)
    for row, (item, amount) in zip(table.rows, [("Ingredient", "Amount"), ("Rye flour", "500 g"), ("Sea salt", "12 g")]):
        row.cells[0].text, row.cells[1].text = item, amount
    d.add_heading("Preserves", level=1)
    d.add_paragraph(DOCX_FACTS[2])
    buf = io.BytesIO()
    d.save(buf)
    path.write_bytes(_fixed_zip_times(buf.getvalue()))


def _fixed_zip_times(data: bytes) -> bytes:
    """python-docx stamps each archive entry with the current time; pin them."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def readme() -> str:
    """The facts each file holds, for people and for the tests that search for them."""
    lines = [
        "# Sample corpus",
        "",
        "Generated by `scripts/make_samples.py` (deterministic: re-running it gives identical",
        "bytes). Each file holds a few facts on distinct topics, so a search for a phrase from",
        "one of them should return that file first. Tests (`tests/test_parsing.py`) and the demo",
        "rely on these facts; change them here and in the script together. This file is hidden",
        "(`.README.md`) because `ingestflow ingest samples` skips hidden files; a visible one",
        "quoting the facts would be ingested too and outrank the documents it describes.",
        "",
        "## handbook.pdf (PDF, 3 pages)",
        "",
    ]
    lines += [f"- page {n} ({title}): {fact}" for n, (title, fact) in enumerate(PDF_PAGES, start=1)]
    for name, kind, facts in [
        ("recipes.docx", "DOCX: headings, a list item, a table (Rye flour 500 g, Sea salt 12 g)", DOCX_FACTS),
        ("garden.html", "HTML: the nav, style and script are not content", HTML_FACTS),
        ("release-notes.md", "Markdown: headings, a list, a code block", MARKDOWN_FACTS),
        ("notes.txt", "plain text", TEXT_FACTS),
    ]:
        lines += ["", f"## {name} ({kind})", ""] + [f"- {fact}" for fact in facts]
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    make_pdf(OUT / "handbook.pdf")
    make_docx(OUT / "recipes.docx")
    for name, text in [("garden.html", HTML), ("release-notes.md", MARKDOWN), ("notes.txt", TEXT),
                       (".README.md", readme())]:
        (OUT / name).write_text(text, encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main()
