"""Generate the bundled sample corpus in samples/ (deterministic; run from the repo root).

    .venv/bin/python scripts/make_samples.py

Each file holds a few facts on distinct topics (listed in the README's demo section), so
the demo and the tests can search for them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import docx
from fpdf import FPDF

OUT = Path(__file__).resolve().parents[1] / "samples"
FILLER = (
    "This section continues with background material, definitions and worked examples "
    "so that the page reads like a real handbook rather than a single sentence. "
)

PDF_PAGES = [
    ("Oceans", "The Great Barrier Reef is the largest coral reef system on Earth, visible from orbit."),
    ("Sky", "The aurora borealis is caused by charged solar particles striking the upper atmosphere."),
    ("Pantry", "Honey never spoils because its low moisture and high acidity stop bacteria from growing."),
]


def make_pdf(path: Path) -> None:
    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
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
    d.core_properties.created = dt.datetime(2026, 1, 1)
    d.core_properties.modified = dt.datetime(2026, 1, 1)
    d.add_heading("Kitchen Notebook", level=0)
    d.add_heading("Sourdough", level=1)
    d.add_paragraph("Let the sourdough dough rest for twelve hours in a cool place before baking.")
    d.add_paragraph("Feed the starter with equal weights of flour and water every morning.", style="List Bullet")
    d.add_heading("Ingredients", level=2)
    table = d.add_table(rows=3, cols=2)
    for row, (item, amount) in zip(table.rows, [("Ingredient", "Amount"), ("Rye flour", "500 g"), ("Sea salt", "12 g")]):
        row.cells[0].text, row.cells[1].text = item, amount
    d.add_heading("Preserves", level=1)
    d.add_paragraph("Sterilise jam jars in a 120 degree oven for twenty minutes before filling them.")
    d.save(str(path))


HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Garden guide</title>
<style>body { font-family: serif; }</style><script>console.log("not content");</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Vegetable garden guide</h1>
<h2>Tomatoes</h2><p>Tomatoes need at least six hours of direct sunlight every day to ripen well.</p>
<h2>Compost</h2><p>A compost heap should be turned every two weeks so that air reaches the centre.</p>
<ul><li>Green waste adds nitrogen.</li><li>Brown waste such as dry leaves adds carbon.</li></ul>
</body></html>
"""

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

TEXT = """Team notes, week 12

The meeting about the lighthouse restoration moved to Thursday at nine.
Bring the survey of the lantern room; the glazing contractor will join by phone.

Reminder: the harbour museum closes early on public holidays.
"""



def main() -> None:
    OUT.mkdir(exist_ok=True)
    make_pdf(OUT / "handbook.pdf")
    make_docx(OUT / "recipes.docx")
    (OUT / "garden.html").write_text(HTML)
    (OUT / "release-notes.md").write_text(MARKDOWN)
    (OUT / "notes.txt").write_text(TEXT)


if __name__ == "__main__":
    main()
