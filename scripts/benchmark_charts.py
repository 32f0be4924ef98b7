"""Draw the documentation's benchmark charts from the tables published in docs/benchmarks.md.

The figures are parsed from the page's Markdown tables, so a chart shows exactly the
published, measured numbers (nothing is measured here); the date and the machine in each
chart's title are read from the text above its table. Writes ``docs/img/*.png``. Needs
matplotlib (``pip install 'anyner[plot]'``).

    python scripts/benchmark_charts.py                 # docs/benchmarks.md -> docs/img/
    python scripts/benchmark_charts.py --out /tmp/img  # elsewhere
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import bar_chart, png_unavailable  # noqa: E402

NUMBER = re.compile(r"^-?\d[\d,]*(\.\d+)?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MACHINE = re.compile(r"Intel Xeon|AMD EPYC")


@dataclass
class Table:
    """One Markdown table: the section it sits in, its cells, and the text above it."""

    section: str  # the nearest heading above it
    index: int  # its position among its section's tables, from 0
    header: list[str]
    rows: list[list[str]]
    context: str  # the section's text from its heading to the table

    def numbers(self, column: int) -> list[float | None]:
        """The column's cells as numbers (``"1,295 MB"`` -> 1295.0; an empty cell -> None)."""
        return [number(row[column]) for row in self.rows]

    def cells(self, column: int) -> list[str]:
        """The column's cells as printed (``"1,295 MB"``)."""
        return [_plain(row[column]) for row in self.rows]

    def row_names(self) -> list[str]:
        """Each row's first cell, with the second when it is text too (``"1,000, top-16"``)."""
        out = []
        for row in self.rows:
            lead = [_plain(row[0])]
            if len(row) > 1 and _plain(row[1]) and number(row[1]) is None:
                lead.append(_plain(row[1]))
            out.append(", ".join(lead))
        return out

    def date(self) -> str:
        found = DATE.findall(self.context)
        return found[-1] if found else "?"

    def machine(self) -> str:
        found = MACHINE.findall(self.context)
        return found[-1] if found else "?"


def number(cell: str) -> float | None:
    """The number a table cell starts with, units and thousands separators dropped."""
    m = NUMBER.match(_plain(cell))
    return float(m.group(0).replace(",", "")) if m else None


def _plain(cell: str) -> str:
    return cell.replace("`", "").replace("**", "").strip()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_tables(path: Path = PAGE) -> list[Table]:
    """Every table of a Markdown page, in order."""
    tables: list[Table] = []
    section, since, index = "", [], 0
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section, since, index = line.lstrip("#").strip(), [], 0
        elif (
            line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip())
        ):
            header, rows = _cells(line), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append(Table(section, index, header, rows, "\n".join(since)))
            since.append("")  # the next table's context is the text since the section began
            index += 1
            continue
        else:
            since.append(line)
        i += 1
    return tables


def find(tables: list[Table], section: str, index: int = 0) -> Table:
    for t in tables:
        if t.section == section and t.index == index:
            return t
    raise LookupError(f"no table {index} under the heading {section!r} in {PAGE.name}")


@dataclass(frozen=True)
class Chart:
    """One PNG: a table of the page and the columns it draws (index -> legend name)."""

    file: str
    section: str
    index: int
    title: str
    columns: tuple[tuple[int, str], ...]
    unit: str = ""
    panels: bool = False


CHARTS = (
    Chart("startup.png", "Start-up and memory", 0, "Process start to first entity, and peak memory",
          ((1, "start to first entity (s)"), (2, "peak RSS (MB)")), panels=True),
    Chart("throughput-span.png", "Throughput", 0, "Span model (v2.1-style head), torch",
          ((1, "reference gliner"), (2, "anyner")), unit="words/s"),
    Chart("throughput-token.png", "Throughput", 1, "Token-level model, torch",
          ((1, "reference gliner"), (2, "anyner")), unit="words/s"),
    Chart("throughput-bi.png", "Throughput", 2, "Bi-encoders, torch",
          ((1, "bi span: reference"), (2, "bi span: anyner"), (4, "bi token: reference"), (5, "bi token: anyner")),
          unit="words/s"),
    Chart("many-labels.png", "Throughput", 3, "Many labels on a bi-encoder, one 200-word text",
          ((1, "encode the labels (s)"), (2, "predict (s)"), (4, "peak RSS (MB)")), panels=True),
    Chart("onnx.png", "Throughput", 4, "ONNX Runtime and torch, batch 8",
          ((1, "reference torch"), (2, "reference int8"), (3, "anyner torch"), (4, "anyner fp32 ONNX"),
           (5, "anyner int8")), unit="words/s"),
    Chart("prefilter.png", "Many labels: the span pre-filter", 0, "Span pre-filter on a bi-encoder, 350 sentences",
          ((2, "predict (s)"), (4, "F1 flat"), (5, "F1 multi-label")), panels=True),
    Chart("annotate.png", "Annotating corpora", 0, "anyner annotate, 2,000 sentences, the built-in model",
          ((1, "wall time (s)"), (3, "words/s")), panels=True),
)  # fmt: skip


def draw_all(out: Path, page: Path = PAGE) -> list[Path]:
    """Every chart of :data:`CHARTS` from ``page``'s tables into ``out``."""
    tables = read_tables(page)
    written = []
    for chart in CHARTS:
        t = find(tables, chart.section, chart.index)
        columns = {name: t.numbers(i) for i, name in chart.columns}
        texts = {name: t.cells(i) for i, name in chart.columns}
        written.append(
            bar_chart(out / chart.file, chart.title, t.row_names(), columns, unit=chart.unit,
                      date=t.date(), machine=t.machine(), panels=chart.panels, texts=texts)
        )  # fmt: skip
    return written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--page", type=Path, default=PAGE, help="the Markdown page to read (default docs/benchmarks.md)"
    )
    p.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "img", help="folder for the PNGs (default docs/img)"
    )
    args = p.parse_args()
    missing = png_unavailable("scripts/benchmark_charts.py")
    if missing:
        print(f"benchmark_charts: error: {missing}", file=sys.stderr)
        return 1
    for path in draw_all(args.out, args.page):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
