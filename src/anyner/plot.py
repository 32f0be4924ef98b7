"""Pictures of training and evaluation: the curves of a run and per-dataset F1 bars.

Needs matplotlib (``pip install 'anyner[plot]'``). Figures are drawn on matplotlib's Agg
canvas through :class:`matplotlib.figure.Figure`, without pyplot: no display, no global
state, safe beside a training loop.

* :func:`plot_curves`: ``curves.png`` of a training run from its ``metrics.jsonl``: the
  training loss, the two learning rates, and the evaluation F1 when periodic evaluation ran.
  ``anyner train`` writes it at each checkpoint; ``anyner plot RUN_DIR`` redraws it.
* :func:`plot_f1_bars`: per-dataset F1 of an evaluation beside the GLiNER paper's rows
  (``anyner evaluate --plot OUT.png``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyner.fileio import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from anyner.evaluate import SuiteResult

METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "curves.png"
INSTALL_HINT = "pip install 'anyner[plot]'"
# The paper's rows drawn beside a model's F1 (the three GLiNER sizes).
PAPER_MODELS: tuple[str, ...] = ("GLiNER-S", "GLiNER-M", "GLiNER-L")


def require_matplotlib(what: str = "plotting") -> Any:
    """``matplotlib.figure``, or an ImportError that names the extra to install."""
    try:
        from matplotlib import figure
    except ImportError as e:
        raise ImportError(f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}") from e
    return figure


def matplotlib_missing(what: str = "plotting") -> str | None:
    """The error message :func:`require_matplotlib` would raise, or None when matplotlib is installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}"


@dataclass
class RunMetrics:
    """What a run's ``metrics.jsonl`` holds, one entry per step (the last one logged wins).

    Attributes:
        steps, loss, lr_encoder, lr_others: the training records, sorted by step.
        eval_steps, average_f1: the evaluation records, sorted by step.
        eval_f1: per dataset, its F1 at each of ``eval_steps`` (None where not scored).
        skipped: lines that could not be read (a line cut short by a killed run, say).
    """

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr_encoder: list[float] = field(default_factory=list)
    lr_others: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    average_f1: list[float] = field(default_factory=list)
    eval_f1: dict[str, list[float | None]] = field(default_factory=dict)
    skipped: int = 0


def metrics_path(run: str | Path) -> Path:
    """``run/metrics.jsonl`` for a run folder, ``run`` itself for a file."""
    run = Path(run)
    return run / METRICS_NAME if run.is_dir() else run


def read_metrics(run: str | Path) -> RunMetrics:
    """Read a run's metrics log (a run folder or the ``metrics.jsonl`` file).

    A resumed run logs again the steps after its checkpoint: the last record of a step wins.

    Raises:
        FileNotFoundError: no such log.
        ValueError: the log holds no training record.
    """
    path = metrics_path(run)
    if not path.is_file():
        raise FileNotFoundError(f"no training metrics at {path}: give a run folder holding {METRICS_NAME}")
    train: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    skipped = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if isinstance(record.get("loss"), int | float):
                train[step] = record
            elif isinstance(record.get("average_f1"), int | float):
                evals[step] = record
            else:
                skipped += 1
    if not train:
        raise ValueError(f"{path} holds no training record (lines with 'step' and 'loss')")
    m = RunMetrics(skipped=skipped)
    for step in sorted(train):
        r = train[step]
        m.steps.append(step)
        m.loss.append(float(r["loss"]))
        m.lr_encoder.append(float(r.get("lr_encoder", float("nan"))))
        m.lr_others.append(float(r.get("lr_others", float("nan"))))
    names = sorted({name for r in evals.values() for name in (r.get("eval") or {})})
    m.eval_f1 = {name: [] for name in names}
    for step in sorted(evals):
        r = evals[step]
        m.eval_steps.append(step)
        m.average_f1.append(float(r["average_f1"]))
        for name in names:
            m.eval_f1[name].append((r.get("eval") or {}).get(name))
    return m


def curves_figure(m: RunMetrics, title: str = "") -> Figure:
    """The figure of :func:`plot_curves`: loss, learning rates and (if any) evaluation F1 by step."""
    figure = require_matplotlib("drawing training curves")
    panels = 3 if m.eval_steps else 2
    fig = figure.Figure(figsize=(6.4 * panels, 4.2), layout="constrained")
    axes = fig.subplots(1, panels)
    loss, lr = axes[0], axes[1]
    loss.plot(m.steps, m.loss, color="C0", label="training loss")
    loss.set(xlabel="step", ylabel="loss", title="training loss (mean since the last record)")
    if min(m.loss) > 0 and max(m.loss) / min(m.loss) > 50:  # a loss falling by orders of magnitude
        loss.set_yscale("log")
    lr.plot(m.steps, m.lr_encoder, color="C1", label="encoder")
    lr.plot(m.steps, m.lr_others, color="C2", label="other layers")
    lr.set(xlabel="step", ylabel="learning rate", title="learning rates")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    lr.legend()
    if m.eval_steps:
        ev = axes[2]
        for i, (name, values) in enumerate(m.eval_f1.items()):
            pts = [(s, v) for s, v in zip(m.eval_steps, values, strict=True) if v is not None]
            if pts:
                ev.plot(
                    *zip(*pts, strict=True), color=f"C{(i + 3) % 10}", alpha=0.5, lw=1, marker=".", label=name
                )
        ev.plot(m.eval_steps, m.average_f1, color="black", lw=2, marker="o", label="average")
        top = max([*m.average_f1, *(v for vs in m.eval_f1.values() for v in vs if v is not None)])
        ev.set(xlabel="step", ylabel="F1 (%)", title="evaluation F1", ylim=(0, min(100.0, top * 1.15 + 1)))
        ev.legend(fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def _save(fig: Figure, out: Path) -> Path:
    """Write ``fig`` to ``out`` as a PNG, atomically (a reader never sees half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def plot_curves(run: str | Path, out: str | Path | None = None) -> Path:
    """Draw a run's training curves from its ``metrics.jsonl``; returns the PNG's path.

    Args:
        run: the run folder (``[output] dir`` of the training config) or its ``metrics.jsonl``.
        out: the PNG to write; default ``curves.png`` beside ``metrics.jsonl``.

    Raises:
        ImportError: matplotlib is not installed (the message names the extra).
        FileNotFoundError, ValueError: no metrics log, or one without training records.
    """
    require_matplotlib("drawing training curves")
    path = metrics_path(run)
    m = read_metrics(path)
    target = Path(out) if out is not None else path.parent / CURVES_NAME
    return _save(curves_figure(m, title=path.parent.name), target)


def f1_bars_figure(suite: SuiteResult, models: tuple[str, ...] = PAPER_MODELS, title: str = "") -> Figure:
    """The figure of :func:`plot_f1_bars`."""
    from anyner.evaluate import PAPER_COLUMNS, PAPER_F1

    figure = require_matplotlib("drawing F1 bars")
    names = [d.name for d in suite.datasets] + ["Average"]
    ours = [d.scores.f1 for d in suite.datasets] + [suite.average_f1]
    columns = [d.column for d in suite.datasets]
    shown = [c for c in columns if c]
    # The paper's average only where it averages the same datasets as ours: all of them are the
    # paper's (its published average when all seven are, else the mean of those shown).
    comparable = len(shown) == len(columns)
    full = sorted(shown) == sorted(PAPER_COLUMNS)
    width = 0.8 / (1 + (len(models) if shown else 0))
    fig = figure.Figure(figsize=(max(6.4, 1.1 * len(names) + 2), 4.8), layout="constrained")
    ax = fig.subplots()
    xs = list(range(len(names)))
    bars = ax.bar([x - 0.4 + width / 2 for x in xs], ours, width, label="this model", color="C0")
    ax.bar_label(bars, fmt="%.1f", fontsize="x-small")
    if shown:
        for k, model in enumerate(models, start=1):
            paper = PAPER_F1[model]
            values = [paper[c] if c else float("nan") for c in columns]
            avg = paper["Average"] if full else sum(paper[c] for c in shown) / len(shown)
            avg = avg if comparable else float("nan")
            ax.bar(
                [x - 0.4 + width * (k + 0.5) for x in xs], [*values, avg], width,
                label=f"{model} (paper)", color=f"C{k}", alpha=0.6,
            )  # fmt: skip
    ax.set_xticks(xs, names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
    ax.set(ylabel="F1 (%)", ylim=(0, 100), title=title or "F1 by dataset (exact match, micro)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_f1_bars(
    suite: SuiteResult, out: str | Path, models: tuple[str, ...] = PAPER_MODELS, title: str = ""
) -> Path:
    """Per-dataset F1 bars of an evaluation, with the paper's rows beside the datasets it reports.

    The average's group has the paper's bars only when every dataset is one of the paper's
    (else the two averages would be over different datasets).

    Args:
        suite: the result of :func:`anyner.evaluate.evaluate_suite`.
        out: the PNG to write.
        models: the paper's rows to draw (``anyner.evaluate.PAPER_F1`` keys).
        title: the figure's title.

    Raises:
        ImportError: matplotlib is not installed (the message names the extra).
    """
    return _save(f1_bars_figure(suite, models, title), Path(out))


__all__ = [
    "CURVES_NAME", "INSTALL_HINT", "METRICS_NAME", "RunMetrics", "curves_figure", "f1_bars_figure",
    "matplotlib_missing", "metrics_path", "plot_curves", "plot_f1_bars", "read_metrics", "require_matplotlib",
]  # fmt: skip
