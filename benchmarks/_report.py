"""What the benchmark scripts share: the machine's name and a table drawn as a bar chart.

* :func:`cpu_name`: the CPU's model name, for the header of a measured table.
* :func:`bar_chart`: rows x numeric columns as a grouped bar chart PNG, titled with the date and
  the machine (``--png PATH`` of ``startup.py``, ``inference.py``, ``many_labels.py``, and
  ``scripts/benchmark_charts.py`` for the documentation's charts).

Charts need matplotlib (``pip install 'anyner[plot]'``); :func:`png_unavailable` says so before
a benchmark spends minutes measuring.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

INSTALL_HINT = "pip install 'anyner[plot]'"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows, else ``"?"``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"


def png_unavailable(option: str = "--png") -> str | None:
    """The message to stop with when matplotlib is missing, or None when charts can be drawn."""
    import importlib.util

    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{option} needs matplotlib, which is not installed: {INSTALL_HINT}"


def bar_chart(
    path: str | Path,
    title: str,
    rows: Sequence[str],
    columns: Mapping[str, Sequence[float]],
    *,
    unit: str = "",
    date: str | None = None,
    machine: str | None = None,
    panels: bool = False,
    texts: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Draw a table as horizontal bars: one group per row, one bar per column; write a PNG.

    Args:
        path: the PNG to write (its folder is created).
        title: what was measured; the date and the machine are added below it.
        rows: the table's row names (top to bottom).
        columns: column name -> one number per row (None or NaN: no bar).
        unit: the value axis' label (for ``panels``, each column name says its own unit).
        date: when it was measured (default today); machine: where (default :func:`cpu_name`).
        panels: one panel per column, each with its own scale (columns of different units).
        texts: column name -> the text printed at each bar (default: the number, ``%g``).

    Returns:
        The path written.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"drawing a chart needs matplotlib, which is not installed: {INSTALL_HINT}") from e
    names = list(columns)
    for name in names:
        if len(columns[name]) != len(rows):
            raise ValueError(f"column {name!r} has {len(columns[name])} values for {len(rows)} rows")
    n_panels = len(names) if panels else 1
    height = 1.2 + 0.28 * len(rows) * (1 if panels else max(1, len(names)))
    fig = Figure(figsize=(4.2 * n_panels + 2.6, max(2.4, height)), dpi=90, layout="constrained")
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for p, ax in enumerate(axes):
        shown = [names[p]] if panels else names
        bar = 0.8 / len(shown)
        for j, name in enumerate(shown):
            values = [float("nan") if v is None else float(v) for v in columns[name]]
            ys = [i - 0.4 + bar * (j + 0.5) for i in range(len(rows))]
            color = palette[(p if panels else j) % len(palette)]
            bars = ax.barh(ys, [0 if v != v else v for v in values], height=bar, color=color, label=name)
            shown_as = (texts or {}).get(name) or ["" if v != v else f"{v:g}" for v in values]
            ax.bar_label(bars, labels=list(shown_as), padding=2, fontsize=7)
        ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
        ax.margins(x=0.15)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        if panels:
            ax.set_title(names[p], fontsize=9)
        else:
            if unit:
                ax.set_xlabel(unit, fontsize=8)
            if len(names) > 1:
                ax.legend(fontsize=7, loc="lower right")
    axes[0].invert_yaxis()  # the first row on top; once, since the panels share the axis
    when = date or time.strftime("%Y-%m-%d")
    fig.suptitle(f"{title}\n{when}, {machine or cpu_name()}", fontsize=10)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
