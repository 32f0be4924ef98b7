"""Training relation models: sampling, batches, and a small model that learns relations."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from anyner import AnyNER  # noqa: E402
from anyner.train.config import TrainSettings, config_from_dict  # noqa: E402
from anyner.train.loop import Trainer  # noqa: E402
from anyner.train.relex import RelationCorpus, RelexMix, load_relation_corpus  # noqa: E402
from tests.conftest import (  # noqa: E402
    RELEX_LABELS,
    RELEX_RELATIONS,
    RELEX_SENTENCES,
    relex_gold_triples,
    relex_train_config,
    write_relation_data,
)  # fmt: skip


def test_relex_config_and_errors(tmp_path):
    cfg = relex_train_config(tmp_path, Path("minilm"))
    net = cfg.model.network
    assert net.model_type == "uni_encoder_span_relex" and net.extra["relations_layer"] == "dot"
    assert net.extra["rel_token"] == "<<REL>>"
    with pytest.raises(ValueError, match="relations_layer = 'nope'"):
        config_from_dict({"model": {"type": "uni_encoder_span_relex", "relations_layer": "nope"},
                          "data": [{"path": "x"}]})  # fmt: skip
    with pytest.raises(ValueError, match="relations_layer is only for"):
        config_from_dict({"model": {"relations_layer": "dot"}, "data": [{"path": "x"}]})


def test_sampling_names_negatives_and_exclusions(tmp_path):
    from anyner.train.config import DataSource

    path = write_relation_data(tmp_path)
    corpus = load_relation_corpus(DataSource(str(path), format="relations"), 384, log=lambda m: None)
    assert corpus.relations == {"works for": 2, "located in": 2}
    assert set(corpus.labels) == set(RELEX_LABELS)
    other = RelationCorpus("other", corpus.records, 1.0, corpus.labels + Counter({"drug": 1}),
                           corpus.relations + Counter({"treats": 1, "causes": 1}))  # fmt: skip
    s = TrainSettings(neg_ratio=1.0, drop_labels=0.0)
    mix = RelexMix([other], None, 0.0, s, max_width=4)
    for slot in range(20):
        it = mix.item(0, 3, slot)
        assert not set(it.labels) & set(it.relations), "a name is a label or a relation, never both"
        assert len(set(it.relations)) == len(it.relations)
        for h, t, r in it.pairs:  # every gold pair points at nodes and a prompted relation
            assert h != t and 0 <= h < len(it.nodes) and 0 <= t < len(it.nodes) and it.relations[r]
        for s_, e, c in it.spans:
            assert (s_, e) in it.nodes and 0 <= c < len(it.labels)
        # seeded: the same (seed, step, slot) gives the same item
        again = mix.item(0, 3, slot)
        assert (again.labels, again.relations, again.pairs) == (it.labels, it.relations, it.pairs)
    gold = sum(len(mix.item(0, 1, j).pairs) for j in range(30))
    assert gold > 0
    held_out = load_relation_corpus(
        DataSource(str(path), format="relations"), 384, exclude=["works for"], log=lambda m: None
    )
    assert held_out.relations == {"located in": 2}


def test_relation_data_needs_a_relation_model(tmp_path, tiny_bert_dir):
    cfg = relex_train_config(tmp_path, tiny_bert_dir)
    cfg.model.network = type(cfg.model.network)(hidden_size=32, max_width=4)  # a plain span model
    with pytest.raises(ValueError, match='format = "relations" trains relation models'):
        Trainer(cfg, progress=False, log=lambda m: None)


@pytest.mark.slow
def test_relation_model_learns_then_saves_and_reloads(tmp_path, minilm_dir):
    """MiniLM with a relex head learns three sentences' entities and relations; the saved folder
    reloads in anyner with the same answers, and in the reference package as a relex model."""
    # relations_layer "none": in this few-hundred-step check the "dot" layer's adjacency is still
    # learning (its loss gradients are checked in test_relation_loss_reaches_every_layer)
    cfg = relex_train_config(tmp_path, minilm_dir, layer="none")
    model = Trainer(cfg, progress=False, log=lambda m: None).fit()
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < 0.05 * metrics[0]["loss"]
    reloaded = AnyNER.from_pretrained(tmp_path / "run" / "model")
    assert reloaded.config.model_type == "uni_encoder_span_relex"
    texts = [" ".join(tokens) for tokens, _, _ in RELEX_SENTENCES]
    found = 0
    for i, text in enumerate(texts):
        ents, rels = reloaded.predict_relations(text, RELEX_LABELS, RELEX_RELATIONS)
        got = {(r.head.text, r.tail.text, r.label) for r in rels}
        assert got == relex_gold_triples(i), (text, got)
        found += len(got)
        again = model.predict_relations(text, RELEX_LABELS, RELEX_RELATIONS)
        assert [(r.head_index, r.tail_index, r.label) for r in again[1]] == [
            (r.head_index, r.tail_index, r.label) for r in rels
        ]
        assert np.allclose([r.score for r in again[1]], [r.score for r in rels], atol=1e-5)
    assert found == 4
    gliner = pytest.importorskip("gliner", reason="the reference gliner package is not installed")
    ref = gliner.GLiNER.from_pretrained(str(tmp_path / "run" / "model"), local_files_only=True)
    assert type(ref).__name__ == "UniEncoderSpanRelexGLiNER"
    _, ref_rels = ref.inference(texts, RELEX_LABELS, relations=RELEX_RELATIONS, threshold=0.5, relation_threshold=0.5,
                                adjacency_threshold=0.5, batch_size=1)  # fmt: skip
    for i, rels in enumerate(ref_rels):
        assert {(r["head"]["text"], r["tail"]["text"], r["relation"]) for r in rels} == relex_gold_triples(i)
    # the trained model scores 100 on its own data, boundaries and strict, in Python and from the CLI
    from anyner.evaluate_relations import evaluate_relations

    data = tmp_path / "data" / "relations.json"
    result = evaluate_relations(reloaded, data)
    assert (result.boundaries.gold, result.boundaries.correct, result.boundaries.predicted) == (4, 4, 4)
    assert result.strict.f1 == 100.0 and result.relations == sorted(RELEX_RELATIONS)
    only = evaluate_relations(reloaded, data, relations=["located in"])
    assert (only.boundaries.gold, only.boundaries.correct) == (2, 2)
    from anyner.cli import main

    out = tmp_path / "scores.json"
    assert main(["evaluate", "--model", str(tmp_path / "run" / "model"), "--relation-data", str(data),
                 "--json", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())[0]["strict"]["f1"] == 100.0


def test_evaluate_relations_cli_errors(tmp_path, capsys):
    from anyner.cli import main

    data = write_relation_data(tmp_path)
    # the built-in model's relations need the torch backend (its ONNX graph finds entities only)
    assert main(["evaluate", "--relation-data", str(data), "--backend", "onnx"]) == 2
    assert "needs a relation-extraction model on the torch backend" in capsys.readouterr().err
    assert main(["evaluate", "--relation-data", str(tmp_path / "nope.json"), "-m", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", "--suite", "ood", "--relations", "a"]) == 2
    assert "applies to --relation-data only" in capsys.readouterr().err
    assert main(["evaluate", "--relation-data", str(data), "-m", "x", "--relation-threshold", "2"]) == 2
    assert "--relation-threshold" in capsys.readouterr().err


@pytest.mark.parametrize("layer", ["dot", "bilinear", "mlp"])
def test_relation_loss_reaches_every_layer(tmp_path, tiny_bert_dir, layer):
    """One step's loss on a tiny encoder: finite, and its gradient reaches the pair MLP, the
    adjacency layer's weights (where it has any) and the entity head."""
    from anyner.relations import RelexPrompts
    from anyner.train.relex import relex_batch, relex_loss

    cfg = relex_train_config(tmp_path, tiny_bert_dir, layer=layer, steps=1)
    trainer = Trainer(cfg, progress=False, log=lambda m: None)
    items = [trainer.mix.item(0, 0, j) for j in range(3)]
    assert any(it.pairs for it in items)
    net = trainer.net
    rb = relex_batch(trainer.model.featurizer, RelexPrompts(trainer.model.featurizer), items, 4)
    loss, scored = relex_loss(net, rb, cfg.train, trainer.device)
    assert torch.isfinite(loss) and loss > 0 and scored > 0
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("pair_proj"))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("span"))
    if layer != "dot":  # dot has no weights of its own
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("adjacency"))


def test_a_relation_model_starts_from_a_span_model(tmp_path, tiny_bert_dir):
    """``init_from`` an entity model with ``type = "uni_encoder_span_relex"``: the entity part keeps
    every weight (the word embeddings gain the <<REL>> row), the relation head is new, and the
    result saves, reloads and answers predict_relations."""
    from anyner.train.relex import relex_from_span_model

    span = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, max_width=4)
    before = {k: v.clone() for k, v in span.model.state_dict().items()}
    relex = relex_from_span_model(span, "bilinear")
    assert relex.config.model_type == "uni_encoder_span_relex"
    assert relex.config.extra["relations_layer"] == "bilinear"
    after = relex.model.state_dict()
    for name, value in before.items():
        if value.shape == after[name].shape:
            assert torch.equal(value, after[name]), name
        else:  # the word embeddings, one row longer
            assert after[name].shape[0] == value.shape[0] + 1 and torch.equal(
                after[name][: len(value)], value
            )
    assert any(k.startswith("pair_proj.") for k in after) and any(k.startswith("adjacency.") for k in after)
    folder = relex.save_pretrained(tmp_path / "relex")
    again = AnyNER.from_pretrained(folder)
    ents, rels = again.predict_relations(
        "Alice works for Acme.", RELEX_LABELS, RELEX_RELATIONS, threshold=0.0
    )
    assert len(ents) > 0 and all(r.label in RELEX_RELATIONS for r in rels)
    with pytest.raises(ValueError, match="starts from a span model"):
        relex_from_span_model(relex, "dot")


def test_a_relation_run_counts_the_wide_spans_of_its_entity_records(tmp_path, tiny_bert_dir):
    """Entity records mixed into a relation run are drawn by their own sampler: the spans too wide
    for ``max_width`` that it meets are counted in ``spans_dropped`` with the relation records' own."""
    from anyner.train.config import DataSource

    entities = tmp_path / "entities.jsonl"
    words = "the long name of one single place lies here".split()
    entities.write_text(json.dumps({"tokenized_text": words, "ner": [[1, 6, "place"]]}) + "\n")
    cfg = relex_train_config(tmp_path, tiny_bert_dir, steps=1)
    cfg.data.append(DataSource(str(entities), weight=1000.0))  # nearly every draw an entity record
    trainer = Trainer(cfg, progress=False, log=lambda m: None)
    assert trainer.spans_dropped == {"too_wide": 0, "in_no_window": 0}
    for j in range(6):
        trainer.mix.item(0, 0, j)
    wide = trainer.mix.entity_mix.long_spans  # the entity sampler's own count
    assert wide > 0 and trainer.mix.relation_long_spans == 0  # the relation records have none
    assert trainer.spans_dropped == {"too_wide": wide, "in_no_window": 0}
