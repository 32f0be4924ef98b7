"""Training examples: label names (synonyms, broader names), renamed labels, mixing corpora."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_train_config


def test_label_names_offer_broader_names_only_when_safe():
    from anyner.train.sampling import LabelNames

    names = LabelNames(
        synonyms={"politician": ["statesman"], "company": ["firm", "person"]},
        broader={"politician": ["person"], "athlete": ["person"]},
    )
    assert names.choices("politician", {"politician", "city"}, True) == ["statesman", "person"]
    # another gold type falls under "person": calling politicians "person" would make athletes negatives
    assert names.choices("politician", {"politician", "athlete"}, True) == ["statesman"]
    assert names.choices("politician", {"politician", "person"}, True) == ["statesman"]
    # a negative label takes synonyms only, and never the name of a gold label
    assert names.choices("politician", {"city"}, False) == ["statesman"]
    assert names.choices("company", {"person"}, False) == ["firm"]


def test_packaged_label_names_load_and_bad_files_are_named(tmp_path):
    from anyner.train.sampling import LabelNames

    names = LabelNames.load()
    assert "organisation" in names.synonyms["organization"]
    assert "person" in names.broader["politician"]
    bad = tmp_path / "names.json"
    bad.write_text(json.dumps({"synonyms": {"person": "human"}}))
    with pytest.raises(ValueError, match=r"names\.json.*'synonyms' must map"):
        LabelNames.load(bad)


def test_renamed_labels_keep_their_spans_and_are_deterministic(tmp_path, tiny_bert_dir):
    from anyner.train.sampling import Mix, load_corpora

    cfg = tiny_train_config(tmp_path, tiny_bert_dir, rename_labels=1.0, neg_ratio=0.0)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"synonyms": {"person": ["human"], "city": ["town"]}}))
    cfg.train.label_names = str(names)
    corpora = load_corpora(cfg.data, 0, lambda m: None)
    mix = Mix(corpora, cfg.train, 4)
    plain = Mix(corpora, tiny_train_config(tmp_path / "p", tiny_bert_dir, neg_ratio=0.0).train, 4)
    for step in range(20):
        item, again, base = mix.item(0, step, 0), mix.item(0, step, 0), plain.item(0, step, 0)
        assert (item.labels, item.spans) == (again.labels, again.spans)
        rename = {"person": "human", "city": "town"}
        assert item.labels == [rename[lab] for lab in base.labels]
        assert item.spans == base.spans


def test_batches_mix_corpora_unless_told_one_corpus_per_batch(tmp_path, tiny_bert_dir):
    from anyner.train.sampling import Corpus, Mix
    from anyner.types import Example, Span

    corpora = [
        Corpus(name, [Example(words=[name, "x"], spans=[Span(0, 1, f"{name} type")])], 1.0)
        for name in ("alpha", "beta", "gamma")
    ]

    def sources(mix_corpora):
        settings = tiny_train_config(tmp_path, tiny_bert_dir, mix_corpora=mix_corpora).train
        mix = Mix(corpora, settings, 4)
        return [{mix.item(0, step, slot).words[0] for slot in range(8)} for step in range(30)]

    mixed, single = sources(True), sources(False)
    assert all(len(s) == 1 for s in single)  # one corpus per batch
    assert len({next(iter(s)) for s in single}) == 3  # and every corpus gets batches
    assert sum(len(s) > 1 for s in mixed) >= 25  # mixed: batches draw from several corpora
    with pytest.raises(ValueError, match="mix_corpora must be true or false"):
        tiny_train_config(tmp_path, tiny_bert_dir, mix_corpora="no")


def test_a_corpus_with_own_negatives_draws_them_only_from_its_labels(tmp_path, tiny_bert_dir):
    """Few-NERD's split files label only their own types: their negatives stay among those."""
    from anyner.train.sampling import Corpus, Mix
    from anyner.types import Example, Span

    own = [Example(words=["a", "b"], spans=[Span(0, 1, f"own{i}")]) for i in range(4)]
    pool = [Example(words=["c", "d"], spans=[Span(0, 1, f"pool{i}")]) for i in range(40)]
    corpora = [Corpus("own", own, 1.0, negatives="own"), Corpus("pool", pool, 1.0)]
    settings = tiny_train_config(tmp_path, tiny_bert_dir, neg_ratio=3.0, drop_labels=0.0).train
    mix = Mix(corpora, settings, 4)
    seen_own, seen_pool = set(), set()
    for step in range(60):
        item = mix.item(0, step, 0)
        (seen_own if item.words[0] == "a" else seen_pool).update(item.labels)
    assert seen_own and seen_own <= {f"own{i}" for i in range(4)}
    # the other corpus still draws negatives from every label, the own corpus's included
    assert any(lab.startswith("own") for lab in seen_pool) and any(
        lab.startswith("pool") for lab in seen_pool
    )
    from anyner.train.config import config_from_dict

    with pytest.raises(ValueError, match="negatives must be 'pool' or 'own'"):
        config_from_dict({"data": [{"path": "x.jsonl", "negatives": "mine"}]})


def test_a_corpus_with_own_negatives_never_takes_broader_names(tmp_path, tiny_bert_dir):
    """Few-NERD's split files leave the other files' persons unlabelled: calling their
    politicians "person" would teach those persons as negatives. Synonyms stay allowed."""
    from anyner.train.sampling import Corpus, Mix
    from anyner.types import Example, Span

    def corpus(name, negatives):
        examples = [Example(words=[name, "x"], spans=[Span(0, 1, "politician")])]
        return Corpus(name, examples, 1.0, negatives=negatives)

    names = tmp_path / "names.json"
    names.write_text(
        json.dumps({"synonyms": {"politician": ["statesman"]}, "broader": {"politician": ["person"]}})
    )
    settings = tiny_train_config(
        tmp_path, tiny_bert_dir, rename_labels=1.0, neg_ratio=0.0, drop_labels=0.0
    ).train
    settings.label_names = str(names)
    mix = Mix([corpus("own", "own"), corpus("pool", "pool")], settings, 4)
    shown = {"own": set(), "pool": set()}
    for step in range(60):
        item = mix.item(0, step, 0)
        shown[item.words[0]].update(item.labels)
    assert shown["own"] == {"statesman"}
    assert shown["pool"] == {"statesman", "person"}
