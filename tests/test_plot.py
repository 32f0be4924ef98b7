"""Pictures: the training curves (``curves.png``, ``anyner plot``) and the evaluation's F1 bars
(``anyner evaluate --plot``); without matplotlib, each says which extra to install."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from anyner import plot
from anyner.evaluate import DatasetResult, SuiteResult, scores_from_counts

pytest.importorskip("matplotlib", reason="the plot extra is not installed")


def check_png(path: Path, min_width: int = 600, min_height: int = 300) -> None:
    """``path`` is a whole PNG of at least that size, and not a blank canvas."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", "PNG cut short"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, (width, height)
    assert len(data) > 10_000, f"{len(data)} bytes: too small to hold the curves"
    from matplotlib.image import imread

    pixels = imread(path)
    colours = {
        tuple(p)
        for p in pixels[:: max(1, height // 100), :: max(1, width // 100)].reshape(-1, pixels.shape[-1])
    }
    assert len(colours) > 10, "a blank picture"


def write_metrics(path: Path, steps=range(10, 110, 10), evals=(50, 100), resumed_from=None) -> Path:
    """A metrics.jsonl as the trainer writes it, with a resumed stretch and a line cut short."""
    lines = []
    for s in steps:
        lines.append({"step": s, "loss": 2.0 / s**0.5, "lr_encoder": 1e-5 * s / 100, "lr_others": 5e-5 * s / 100,
                      "examples_per_s": 10.0, "elapsed_s": s, "spans_dropped": {}})  # fmt: skip
        if s in evals:
            lines.append({"step": s, "eval": {"a": s / 4, "b": s / 5}, "average_f1": s * 0.225})
    if resumed_from is not None:  # a resumed run logs again the steps after its checkpoint
        lines += [
            {"step": s, "loss": 9.0, "lr_encoder": 0, "lr_others": 0} for s in steps if s > resumed_from
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 110, "lo', encoding="utf-8")
    return path


def test_read_metrics_keeps_the_last_record_of_a_step(tmp_path):
    m = plot.read_metrics(write_metrics(tmp_path / "run" / "metrics.jsonl", resumed_from=80))
    assert m.steps == list(range(10, 110, 10))
    assert m.loss[-1] == 9.0 and m.loss[0] == pytest.approx(2.0 / 10**0.5)
    assert m.eval_steps == [50, 100] and m.average_f1 == [50 * 0.225, 100 * 0.225]
    assert m.eval_f1 == {"a": [12.5, 25.0], "b": [10.0, 20.0]}
    assert m.skipped == 1  # the line cut short


def test_the_curves_figure_has_loss_learning_rates_and_eval_f1(tmp_path):
    m = plot.read_metrics(write_metrics(tmp_path / "metrics.jsonl"))
    fig = plot.curves_figure(m)
    loss, lr, ev = fig.axes
    assert list(loss.lines[0].get_ydata()) == m.loss
    assert [list(line.get_ydata()) for line in lr.lines] == [m.lr_encoder, m.lr_others]
    assert list(ev.lines[-1].get_ydata()) == m.average_f1 and len(ev.lines) == 3  # a, b, average
    no_eval = plot.read_metrics(write_metrics(tmp_path / "plain" / "metrics.jsonl", evals=()))
    assert len(plot.curves_figure(no_eval).axes) == 2


def test_plot_curves_writes_curves_png_beside_the_log(tmp_path):
    write_metrics(tmp_path / "run" / "metrics.jsonl")
    out = plot.plot_curves(tmp_path / "run")
    assert out == tmp_path / "run" / "curves.png"
    check_png(out, min_width=1500)  # three panels side by side
    assert not list((tmp_path / "run").glob(".*tmp"))  # written atomically, no temp file left
    with pytest.raises(FileNotFoundError, match="no training metrics at"):
        plot.plot_curves(tmp_path / "nothing")
    (tmp_path / "empty.jsonl").write_text('{"step": 1, "eval": {}, "average_f1": 1.0}\n')
    with pytest.raises(ValueError, match="holds no training record"):
        plot.plot_curves(tmp_path / "empty.jsonl")


def suite() -> SuiteResult:
    def result(name, gold, predicted, correct):
        return DatasetResult(name, scores_from_counts(gold, predicted, correct), sentences=10, labels=["x"])

    return SuiteResult(
        [result("CrossNER_AI", 100, 80, 40), result("mit-movie", 50, 50, 20), result("mine", 30, 10, 9)]
    )


def test_f1_bars_draw_each_dataset_beside_the_papers_rows(tmp_path):
    from anyner.evaluate import PAPER_F1

    s = suite()
    fig = plot.f1_bars_figure(s)
    (ax,) = fig.axes
    groups = ax.containers
    assert [c.get_label() for c in groups] == ["this model", *(f"{m} (paper)" for m in plot.PAPER_MODELS)]
    assert [b.get_height() for b in groups[0]] == pytest.approx(
        [*(d.scores.f1 for d in s.datasets), s.average_f1]
    )
    small = [b.get_height() for b in groups[1]]
    assert small[:2] == [PAPER_F1["GLiNER-S"]["AI"], PAPER_F1["GLiNER-S"]["Movie"]]
    assert small[2] != small[2]  # NaN: the paper has no row for a dataset of one's own
    assert small[3] != small[3]  # no paper average beside one that includes a dataset of one's own
    paper_only = plot.f1_bars_figure(SuiteResult(s.datasets[:2]))
    small = [b.get_height() for b in paper_only.axes[0].containers[1]]
    assert small[2] == pytest.approx((PAPER_F1["GLiNER-S"]["AI"] + PAPER_F1["GLiNER-S"]["Movie"]) / 2)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CrossNER_AI", "mit-movie", "mine", "Average"]
    check_png(plot.plot_f1_bars(s, tmp_path / "f1.png"), min_height=400)


def test_without_matplotlib_each_command_names_the_extra(monkeypatch, tmp_path, capsys):
    from anyner.cli import EXIT_FAILED, main

    write_metrics(tmp_path / "run" / "metrics.jsonl")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    monkeypatch.setattr(
        plot,
        "matplotlib_missing",
        lambda what="plotting": f"{what} needs matplotlib, which is not installed: {plot.INSTALL_HINT}",
    )
    with pytest.raises(ImportError, match=r"pip install 'anyner\[plot\]'"):
        plot.plot_curves(tmp_path / "run")
    assert main(["plot", str(tmp_path / "run")]) == EXIT_FAILED
    assert (
        "anyner plot needs matplotlib, which is not installed: pip install 'anyner[plot]'"
        in capsys.readouterr().err
    )
    # evaluate checks before the model loads (a model that does not exist is never reached)
    assert (
        main(["evaluate", "--model", "/nonexistent", "--data", str(tmp_path), "--plot", "x.png"])
        == EXIT_FAILED
    )
    assert "anyner evaluate --plot needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "run" / "curves.png").exists()


def test_anyner_plot_redraws_a_run(tmp_path, capsys):
    from anyner.cli import EXIT_OK, EXIT_USAGE, main

    write_metrics(tmp_path / "run" / "metrics.jsonl")
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "pic.png")]) == EXIT_OK
    assert f"wrote {tmp_path / 'pic.png'}" in capsys.readouterr().out
    check_png(tmp_path / "pic.png")
    assert main(["plot", str(tmp_path / "none")]) == EXIT_USAGE
    assert "no training metrics at" in capsys.readouterr().err


def test_training_writes_curves_png_with_eval_f1(tmp_path, tiny_bert_dir):
    from anyner.train import Trainer
    from tests.conftest import tiny_train_config
    from tests.train.test_loop import write_benchmark

    cfg = tiny_train_config(tmp_path, tiny_bert_dir, steps=6, batch_size=2)
    cfg.output.log_every, cfg.output.save_every = 1, 3
    cfg.eval.data, cfg.eval.every, cfg.eval.limit = [str(write_benchmark(tmp_path / "bench"))], 3, None
    logged = []
    Trainer(cfg, progress=False, log=logged.append).fit()
    curves = tmp_path / "run" / "curves.png"
    check_png(curves, min_width=1500)  # three panels: the eval F1 is drawn
    assert not any(m.startswith("note:") for m in logged), logged


def test_training_without_matplotlib_says_so_once_and_goes_on(tmp_path, tiny_bert_dir, monkeypatch):
    from anyner.train import Trainer
    from tests.conftest import tiny_train_config

    monkeypatch.setattr(
        plot,
        "matplotlib_missing",
        lambda what="plotting": f"{what} needs matplotlib, which is not installed: {plot.INSTALL_HINT}",
    )
    cfg = tiny_train_config(tmp_path, tiny_bert_dir, steps=4, batch_size=2)
    cfg.output.save_every = 2
    logged = []
    Trainer(cfg, progress=False, log=logged.append).fit()
    notes = [m for m in logged if m.startswith("note:")]
    assert notes == ["note: curves.png needs matplotlib, which is not installed: pip install 'anyner[plot]'"]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "curves.png").exists()
