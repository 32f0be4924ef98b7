"""The benchmark charts: the PNG writer on a small fake table, and the parser on the real page.

``benchmarks/_report.py`` draws a measured table as a bar chart (``--png`` of the benchmark
scripts); ``scripts/benchmark_charts.py`` reads the tables published in ``docs/benchmarks.md``
and draws the documentation's charts from them. Nothing here runs a benchmark.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(ROOT / "benchmarks"))
report = _load(ROOT / "benchmarks" / "_report.py", "_report")
charts = _load(ROOT / "scripts" / "benchmark_charts.py", "benchmark_charts")


def test_cpu_name_is_a_name():
    name = report.cpu_name()
    assert isinstance(name, str) and name.strip() and "\n" not in name


def test_a_fake_table_becomes_a_small_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'anyner[plot]')")
    rows = ["40 words, batch 1", "200 words, batch 8"]
    out = report.bar_chart(
        tmp_path / "sub" / "speed.png", "Fake speed", rows, {"reference": [603, 870], "anyner": [1086, 2492]},
        unit="words/s", date="2026-12-02", machine="Test CPU",
    )  # fmt: skip
    data = out.read_bytes()
    assert out == tmp_path / "sub" / "speed.png"
    assert data.startswith(PNG_MAGIC) and 1_000 < len(data) < 100_000
    panels = report.bar_chart(
        tmp_path / "panels.png", "Fake start-up", rows, {"s": [0.48, None], "MB": [117, 623]}, panels=True
    )
    assert panels.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        report.bar_chart(tmp_path / "bad.png", "bad", rows, {"x": [1, 2, 3]})


def test_without_matplotlib_the_message_names_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    message = report.png_unavailable("--png")
    assert message and "--png" in message and "pip install 'anyner[plot]'" in message


def test_cells_are_read_as_the_published_numbers():
    assert charts.number("1,295 MB") == 1295.0
    assert charts.number("0.48 s") == 0.48
    assert charts.number("`2.43x`") == 2.43
    assert charts.number("**F1 78.8**") is None
    assert charts.number("") is None


def test_the_published_tables_parse_into_numbers():
    tables = charts.read_tables()
    startup = charts.find(tables, "Start-up and memory")
    assert startup.header[0] == "case" and len(startup.rows) >= 3
    assert all(isinstance(x, float) for x in startup.numbers(1) + startup.numbers(2))
    assert startup.date() != "?" and startup.machine() != "?"
    span = charts.find(tables, "Throughput", 0)
    assert span.row_names()[0] == "40 words, 5 labels, batch 1"
    assert span.numbers(1)[0] == 603 and span.numbers(2)[0] == 1086  # reference, anyner words/s
    prefilter = charts.find(tables, "Many labels: the span pre-filter")
    assert prefilter.row_names()[2] == "1,000, all" and prefilter.numbers(2)[2] == 5.9
    # every chart finds its table and only numbers in the columns it draws
    for chart in charts.CHARTS:
        t = charts.find(tables, chart.section, chart.index)
        for column, _ in chart.columns:
            assert all(v is not None for v in t.numbers(column)), (chart.file, column)


def test_the_documentation_shows_each_chart_and_each_is_small():
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for chart in charts.CHARTS:
        png = ROOT / "docs" / "img" / chart.file
        assert f"(img/{chart.file})" in page, chart.file
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size < 100_000, chart.file


def test_draw_all_writes_every_chart(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'anyner[plot]')")
    written = charts.draw_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(c.file for c in charts.CHARTS)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in written)
