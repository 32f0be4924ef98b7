"""The featurizer: one long-text policy for prediction and training, typed batches, label groups."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from anyner import AnyNER
from anyner.batching import INPUT_NAMES, Batch, span_targets, token_targets
from anyner.featurize import Featurizer, plan_windows
from anyner.train import Trainer
from anyner.train.config import config_from_dict


@pytest.fixture(scope="module")
def featurizer(tiny_bert_dir) -> Featurizer:
    torch.manual_seed(0)
    model = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0, max_width=4)
    return model.featurizer.with_limits(config=dataclasses.replace(model.config, max_len=40))


def long_record(n_words: int = 300, every: int = 7):
    words = [f"w{i}" if i % every else f"Name{i}" for i in range(n_words)]
    spans = [(i, i + 2, i // every % 2) for i in range(0, n_words - 2, every)]  # two-word spans
    return words, spans


def test_a_long_training_record_is_windowed_and_no_span_is_lost(featurizer):
    words, spans = long_record()
    labels = ["person", "city"]
    seen, windows = set(), set()
    for draw in np.linspace(0, 1, 200, endpoint=False):
        f = featurizer.train_features(words, labels, spans, float(draw))
        a, b = f.window
        windows.add((a, b))
        assert b - a <= featurizer.config.max_len
        assert len(f.prompted.input_ids) <= featurizer.max_tokens
        assert f.lost == 0 and f.n_labels == 2
        assert len(f.prompted.word_index) == b - a
        # every gold span inside the window is a target there, shifted to the window
        assert f.spans == [(s - a, e - a, c) for s, e, c in spans if a <= s and e <= b]
        seen |= {(s + a, e + a, c) for s, e, c in f.spans}
    assert len(windows) > 1
    assert seen == set(spans)  # over the draws, every gold span is trained on


def test_prediction_and_training_cut_the_same_windows(featurizer):
    words, spans = long_record()
    label_set = featurizer.label_set(["person", "city"])
    from anyner.types import Word

    jobs = featurizer.jobs(0, [Word(w, 0, len(w)) for w in words], label_set)
    predicted = {(j.word_start, j.word_start + j.n_words) for j in jobs}
    trained = {
        featurizer.train_features(words, ["person", "city"], spans, float(d)).window
        for d in np.linspace(0, 1, 200, endpoint=False)
    }
    assert trained == predicted


def test_a_short_record_is_read_whole(featurizer):
    f = featurizer.train_features(["Alice", "lives", "in", "Paris"], ["person"], [(0, 1, 0)], 0.99)
    assert f.window == (0, 4) and f.spans == [(0, 1, 0)] and f.lost == 0


def test_a_span_that_fits_no_window_is_counted(featurizer):
    small = featurizer.with_limits(max_tokens=24)  # a handful of subwords per window
    words = [f"qxzvkwplmj{i}" for i in range(40)]  # many subwords each
    spans = [(10, 14, 0), (2, 3, 0)]  # the first needs more subwords than any window holds
    f = small.train_features(words, ["person"], spans, 0.0)
    assert sum(len(p) for p in small.prompts.word_pieces(words[10:14])) > 24
    assert f.lost == 1


def test_the_batch_is_the_network_input(featurizer):
    label_set = featurizer.label_set(["person", "city"])
    from anyner.words import split_words

    jobs = [
        j
        for i, t in enumerate(["Alice lives in Paris .", "Bob"])
        for j in featurizer.jobs(i, split_words(t), label_set)
    ]
    batch = featurizer.collate(jobs)
    assert isinstance(batch, Batch) and len(batch) == 2
    assert INPUT_NAMES == (
        "input_ids",
        "attention_mask",
        "word_index",
        "word_present",
        "text_lengths",
        "label_index",
    )
    assert batch.text_lengths.tolist() == [5, 1] and batch.word_present.dtype == np.bool_
    assert set(batch.tensors()) == set(INPUT_NAMES) == set(batch.feed())
    gold = span_targets(batch, [[(0, 1, 0), (3, 4, 1)], []], [2, 2], max_width=4)
    assert gold.targets.shape == (2, 5, 4, 2) and gold.targets.sum() == 2
    assert gold.mask[1].sum() == 1 * 2  # one word, one width, two labels
    # token-level: start at the first word, end at the last, inside at each; no width limit
    tok = token_targets(batch, [[(0, 3, 1)], []], [2, 1], max_width=1)
    assert tok.targets.shape == (2, 5, 3, 2)
    assert tok.targets[0, :, :, 1].tolist() == [[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert tok.targets[0, :, :, 0].sum() == 0 and tok.targets[1].sum() == 0
    assert tok.mask[0].sum() == 5 * 3 * 2 and tok.mask[1].sum() == 1 * 3 * 1  # words x scores x labels
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.input_ids = batch.input_ids


def test_windows_cover_and_bound():
    counts = [3] * 100
    windows = plan_windows(counts, 30, 50, 8)
    assert windows[0][0] == 0 and windows[-1][1] == 100
    assert all(sum(counts[a:b]) <= 30 for a, b, _ in windows)


def test_the_trainer_reports_dropped_spans(tmp_path, tiny_bert_dir):
    data = tmp_path / "train.jsonl"
    words, spans = long_record(120)
    with open(data, "w") as f:
        f.write(
            json.dumps({"tokenized_text": words, "ner": [[s, e - 1, "person"] for s, e, _ in spans]}) + "\n"
        )
        f.write(
            json.dumps({"tokenized_text": ["a", "b", "c", "d", "e", "f"], "ner": [[0, 5, "city"]]}) + "\n"
        )
    config = config_from_dict(
        {
            "model": {"encoder": str(tiny_bert_dir), "hidden_size": 32, "num_rnn_layers": 0, "max_width": 4,
                      "max_len": 40},
            "data": [{"path": str(data)}],
            "train": {"steps": 6, "batch_size": 2, "seed": 0},
            "output": {"dir": str(tmp_path / "run"), "save_every": 100, "log_every": 3},
        }
    )  # fmt: skip
    trainer = Trainer(config, progress=False, log=lambda m: None)
    trainer.fit()
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    dropped = records[-1]["spans_dropped"]
    assert set(dropped) == {"too_wide", "in_no_window"}
    assert dropped["too_wide"] >= 1  # the six-word span is wider than max_width 4, and counted
    assert dropped["in_no_window"] == 0
    assert trainer.spans_dropped == dropped

    # a run stopped and resumed counts what the uninterrupted one does, and its clock goes on
    config.output.dir = str(tmp_path / "resumed")
    config.output.save_every = 3
    Trainer(config, progress=False, log=lambda m: None).fit(until_step=3)
    resumed = Trainer(config, progress=False, log=lambda m: None)
    resumed.fit(resume=True)
    again = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in again] == [3, 6]
    assert again[-1]["spans_dropped"] == dropped
    assert again[-1]["elapsed_s"] > again[0]["elapsed_s"]
