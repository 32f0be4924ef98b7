"""Many labels: a bi-encoder encodes a window once for all its label groups; the span pre-filter
(keeping every span changes nothing; keeping k scores exactly k spans per sequence, the best by
the filter; its layer trains, saves and loads; clear errors)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from anyner import AnyNER
from anyner.export_onnx import one_batch
from anyner.prefilter import FILTER_FILE, SpanPrefilter, span_hidden
from anyner.train.prefilter import train_span_filter
from tests.conftest import spread_head, tiny_train_config

TEXTS = [
    "Bill Gates founded Microsoft in Albuquerque , New Mexico , on April 4 , 1975 .",
    "Angela Merkel met Emmanuel Macron in Berlin .",
    "Paris",
]
LABELS = ["person", "organization", "location", "date", "city", "country"]


@pytest.fixture(scope="module")
def small(tiny_bert_dir):
    torch.manual_seed(0)
    return spread_head(AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=1), seed=0)


@pytest.fixture(scope="module")
def small_bi(tiny_bert_dir):
    torch.manual_seed(1)
    model = AnyNER.from_encoder(
        tiny_bert_dir,
        hidden_size=32,
        num_rnn_layers=0,
        model_type="bi_encoder_span",
        labels_encoder=str(tiny_bert_dir),
    )
    return spread_head(model, seed=1)


def random_filter(model, top_k, seed=0):
    width = model.model.span.out_project[3].weight.shape[1]
    rng = np.random.default_rng(seed)
    return SpanPrefilter(rng.normal(size=width).astype(np.float32), 0.0, top_k)


def logits(model, texts=TEXTS, labels=LABELS):
    batch, jobs = one_batch(model, texts, labels)
    return model.runner.logits(batch), batch, jobs


@pytest.mark.parametrize("which", ["small", "small_bi"])
def test_keeping_every_span_changes_nothing(which, request):
    model = request.getfixturevalue(which)
    model.span_prefilter = None
    dense, batch, jobs = logits(model)
    want = model.predict_batch(TEXTS, LABELS, threshold=0.3)
    model.span_prefilter = random_filter(model, top_k=10_000)
    try:
        kept, _, _ = logits(model)
        for row, job in enumerate(jobs):
            n = job.n_words
            for w in range(n):
                k = min(model.config.max_width, n - w)  # spans inside the text
                np.testing.assert_allclose(
                    kept[row, w, :k, : job.n_labels], dense[row, w, :k, : job.n_labels], atol=1e-5, rtol=0
                )
        assert model.predict_batch(TEXTS, LABELS, threshold=0.3) == want
    finally:
        model.span_prefilter = None


@pytest.mark.parametrize("which", ["small", "small_bi"])
def test_top_k_scores_exactly_the_best_k_spans(which, request):
    model = request.getfixturevalue(which)
    layer = random_filter(model, top_k=7, seed=3)
    dense, batch, jobs = logits(model)
    model.span_prefilter = layer
    try:
        kept, _, _ = logits(model)
        with torch.inference_mode():
            h, valid = span_hidden(model.model, batch.tensors())
            score = (h @ torch.from_numpy(layer.weight)).masked_fill(~valid, -float("inf"))
        for row in range(len(jobs)):
            scored = np.isfinite(kept[row, :, :, 0])
            assert scored.sum() == min(7, int(valid[row].sum()))
            best = set(torch.topk(score[row].flatten(), int(scored.sum())).indices.tolist())
            assert set(np.flatnonzero(scored.flatten()).tolist()) == best
            assert valid[row].numpy()[scored].all()  # never a span past the text
            np.testing.assert_allclose(kept[row][scored], dense[row][scored], atol=1e-5, rtol=0)
        for text, ents in zip(TEXTS, model.predict_batch(TEXTS, LABELS, threshold=0.0), strict=True):
            assert len({(e.start, e.end) for e in ents}) <= 7, text
    finally:
        model.span_prefilter = None


def test_errors(small, tmp_path, tiny_bert_dir):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        SpanPrefilter(np.zeros(3, np.float32), 0.0, 0)
    with pytest.raises(TypeError, match="SpanPrefilter or None"):
        small.span_prefilter = 5
    with pytest.raises(ValueError, match="trained for another model"):
        small.span_prefilter = SpanPrefilter(np.zeros(3, np.float32), 0.0, 4)
    marker = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, span_mode="marker")
    with pytest.raises(NotImplementedError, match="span_mode='markerV0'"):
        marker.span_prefilter = random_filter(small, 4)
    with pytest.raises(FileNotFoundError, match=FILTER_FILE):
        SpanPrefilter.load(tmp_path, top_k=4)


@pytest.mark.slow
def test_the_filter_layer_trains_saves_and_loads(small, tmp_path, tiny_bert_dir):
    """On the training sentences, the trained filter ranks the gold spans above the others."""
    cfg = tiny_train_config(tmp_path, tiny_bert_dir)  # its data and sampling; the model is ``small``
    layer = train_span_filter(small, cfg, steps=120, batch_size=4, lr=3e-2, log=lambda m: None)
    path = layer.save(tmp_path)
    assert path.name == FILTER_FILE
    again = SpanPrefilter.load(tmp_path, top_k=3)
    assert np.array_equal(again.weight, layer.weight) and again.bias == pytest.approx(layer.bias)
    assert again.top_k == 3
    # the gold spans of the training data rank in the top half of their sentence's spans
    from anyner.train.loop import Trainer

    trainer = Trainer.__new__(Trainer)
    trainer.setup_data(cfg, small, lambda m: None)
    items = [trainer.mix.item(0, 0, j) for j in range(6)]
    batch, gold = trainer.batch(items)
    with torch.inference_mode():
        h, valid = span_hidden(small.model, batch.tensors())
        score = (h @ torch.from_numpy(layer.weight)).masked_fill(~valid, -float("inf"))
    positive = torch.from_numpy(gold.targets).amax(-1) > 0
    ranks = []
    for row in range(len(items)):
        order = score[row].flatten().argsort(descending=True)
        where = torch.empty_like(order)
        where[order] = torch.arange(len(order))
        n_valid = int(valid[row].sum())
        ranks += [int(r) / n_valid for r in where[positive[row].flatten()]]
    assert ranks and np.mean(ranks) < 0.25, ranks


def test_bi_encoder_encodes_a_window_once_for_all_its_label_groups(small_bi):
    """1,100 labels are three groups of at most 512, three rows of one batch: the text encoder
    runs on one row, and the logits are those of each row run alone."""
    from anyner.featurize import BI_ENCODER_GROUP

    labels = [f"type {i}" for i in range(1100)]
    batch, jobs = one_batch(small_bi, TEXTS[:1], labels)
    assert len(jobs) == 3 and max(j.n_labels for j in jobs) == BI_ENCODER_GROUP
    net, seen = small_bi.model, []
    inner = net._words

    def spy(input_ids, *rest):
        seen.append(input_ids.shape[0])
        return inner(input_ids, *rest)

    net._words = spy
    try:
        together = small_bi.runner.logits(batch)
        assert seen == [1]
        for row in range(len(jobs)):
            alone = dataclasses.replace(
                batch, **{f: getattr(batch, f)[row : row + 1] for f in ("input_ids", "attention_mask", "word_index",
                                                                         "word_present", "text_lengths", "label_index",
                                                                         "label_vectors")}
            )  # fmt: skip
            np.testing.assert_allclose(
                together[row : row + 1], small_bi.runner.logits(alone), atol=1e-5, rtol=0
            )
    finally:
        del net._words


def test_projected_label_groups_are_kept_and_forgotten(small_bi):
    """The label MLP's output is kept per label group and reused: the same logits as computing it
    afresh; clear_label_cache forgets it and the label vectors."""
    labels = [f"type {i}" for i in range(600)]
    small_bi.clear_label_cache()
    batch, _ = one_batch(small_bi, TEXTS, labels)
    first = small_bi.runner.logits(batch)
    assert len(small_bi.model._projected) == 2  # two groups: 512 + 88 labels
    again = small_bi.runner.logits(batch)  # from the kept projections
    np.testing.assert_array_equal(first, again)
    small_bi.predict(TEXTS[0], labels)
    assert len(small_bi.label_cache) == 600
    small_bi.clear_label_cache()
    assert len(small_bi.model._projected) == 0 and len(small_bi.label_cache) == 0
    with torch.no_grad():
        fresh = small_bi.model(**batch.tensors()).numpy()
    np.testing.assert_allclose(fresh, first, atol=1e-5, rtol=0)
