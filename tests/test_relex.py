"""Relation extraction: span relex checkpoints (GLiNER's ``UniEncoderSpanRelexGLiNER``).

The reference ``gliner`` package builds and saves one model per ``relations_layer`` mode on the
offline MiniLM encoder, with random heads; anyner loads each folder and must give the same
entities and relations on real sentences (identical lists, scores within 1e-4), and the
reference must agree with a folder anyner saved. Bad input gives clear errors or empty results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from anyner import AnyNER, Entity, Relation  # noqa: E402
from anyner.checkpoint import CheckpointError, config_from_gliner  # noqa: E402
from tests.conftest import MODES, RELATIONS, build_relex, ood_sample  # noqa: E402

gliner = pytest.importorskip("gliner", reason="the reference gliner package is not installed")

TOL = 1e-4
SPANS_PER_TEXT = 16  # the entity threshold keeps about this many spans per sentence
ADJACENT_SHARE = 0.5  # the adjacency threshold keeps about this share of their pairs
RELATION_SHARE = 0.4  # the relation threshold keeps about this share of the pair scores


@pytest.fixture(scope="module")
def relex_models(tmp_path_factory, minilm_dir):
    """mode -> folder, built on first use of each mode (once per module)."""
    built: dict[str, Path] = {}

    def get(mode: str) -> Path:
        if mode not in built:
            seed = 10 + list(MODES).index(mode)
            built[mode] = build_relex(tmp_path_factory.mktemp(f"relex_{mode}"), minilm_dir, mode, seed)
        return built[mode]

    return get


def reference(folder: Path):
    return gliner.GLiNER.from_pretrained(str(folder), local_files_only=True)


def calibrate(ours: AnyNER, sample, per_set: int = 2) -> tuple[float, float | None, float]:
    """(entity, adjacency, relation) thresholds for a random head, from anyner's scores on the
    first sentences of each set: the entity threshold keeps about :data:`SPANS_PER_TEXT` spans
    per sentence, the adjacency threshold about :data:`ADJACENT_SHARE` of their pairs (None for
    ``relations_layer="none"``), the relation threshold about :data:`RELATION_SHARE` of the
    (pair, relation) scores. Both libraries then run with the same thresholds."""
    import numpy as np

    from anyner.batching import collate
    from anyner.relations import RelexPrompts, relation_set

    f, net = ours.featurizer, ours.model
    prompts = RelexPrompts(f)
    rows = []  # (word vectors, relation vectors, spans (n, 2), max probability of each span)
    with torch.inference_mode():
        for _, sentences, labels in sample:
            ls = f.label_set(labels)
            rs = relation_set(f, RELATIONS, ls)
            for i, text in enumerate(sentences[:per_set]):
                for job in prompts.jobs(i, ours.split_words(text), ls, rs):
                    batch = collate([job.prompted], f.pad_id)
                    index = torch.tensor([job.relation_index])
                    logits, words, rels = net.encode(**batch.tensors(), relation_index=index)
                    n, K = job.n_words, logits.shape[2]
                    p = torch.sigmoid(logits[0, :n, :, : len(ls.names)]).amax(-1)  # (n, K)
                    starts, widths = torch.nonzero(torch.ones(n, K, dtype=torch.bool), as_tuple=True)
                    ok = starts + widths < n
                    spans = torch.stack([starts[ok], starts[ok] + widths[ok] + 1], -1)
                    rows.append((words[0, :n], rels[0], spans, p[starts[ok], widths[ok]]))

    def quantile(parts: list[torch.Tensor], keep: float) -> float:
        # halfway between two neighbouring scores, so that no score sits on the threshold
        v = np.sort(torch.cat(parts).double().numpy())
        k = min(max(int(len(v) * (1 - keep)), 1), len(v) - 1)
        return float((v[k - 1] + v[k]) / 2)

    every = [r[3] for r in rows]
    threshold = quantile(every, SPANS_PER_TEXT * len(rows) / sum(len(x) for x in every))
    adjacency, scores, rel_scores = None, [], []
    with torch.inference_mode():
        kept = [(w, r, spans[p > threshold]) for w, r, spans, p in rows]
        if net.adjacency is not None:
            for words, _, spans in kept:
                if len(spans) >= 2:
                    a = net.adjacency(net.span_vectors(words, spans))
                    scores.append(a[~torch.eye(len(spans), dtype=torch.bool)])
            adjacency = quantile(scores, ADJACENT_SHARE)
        for words, rels, spans in kept:
            rel_scores.append(torch.sigmoid(net.relations(words, spans, rels, adjacency or 0.0)[1]).flatten())
    return threshold, adjacency, quantile(rel_scores, RELATION_SHARE)


def _rel_key(r: dict) -> tuple:
    h, t = r["head"], r["tail"]
    return (h["start"], h["end"], h["text"], h["type"], h["entity_idx"],
            t["start"], t["end"], t["text"], t["type"], t["entity_idx"], r["relation"])  # fmt: skip


def run(model, sample, thresholds: tuple[float, float | None, float], flat: bool = True) -> list[tuple]:
    """(entity dicts, relation dicts) per set of the sample, from the reference or from anyner."""
    threshold, adjacency, relation = thresholds
    options = dict(
        threshold=threshold, adjacency_threshold=adjacency, relation_threshold=relation, flat_ner=flat
    )
    if isinstance(model, AnyNER):
        return [
            model.batch_predict_relation_dicts(s, labels, RELATIONS, **options) for _, s, labels in sample
        ]
    out = []
    # batch_size=1: the reference pads every text of a batch to the batch's largest set of
    # entity pairs, and runs its relation layers on the padding (four times slower at 8)
    for _, sentences, labels in sample:
        try:
            out.append(model.inference(sentences, labels, relations=RELATIONS, batch_size=1, **options))
        except AttributeError:
            # gliner 0.2.29's gat and attention layers fail on a batch where no span is kept (torch's
            # attention returns no weights for zero nodes): run the texts one by one, None for those
            ents, rels = [], []
            for text in sentences:
                try:
                    e, r = model.inference([text], labels, relations=RELATIONS, **options)
                except AttributeError:
                    e, r = [None], [None]
                ents.append(e[0])
                rels.append(r[0])
            out.append((ents, rels))
    return out


EPS = 1e-4  # a score this close to its threshold may fall on either side in the other library


def _keys(items: list[dict]) -> list[tuple]:
    return [tuple(sorted((k, v) for k, v in e.items() if k != "score")) for e in items]


def _borderline(ours, text, labels, thresholds, we, wr, ge, gr) -> bool:
    """Whether the two answers for one text differ only by items that sit within :data:`EPS` of
    a threshold. Entities: each differing entity's score is that close to the entity threshold.
    Relations (same entities): anyner's own answer with the adjacency and relation thresholds
    moved by EPS down (lenient) and up (strict) holds every differing relation in the lenient
    answer and none in the strict one. Float sums in another order (another CPU, another batch
    shape) move scores by about 1e-6; among the ~10^5 scores near a threshold in a run, one such
    flip is expected now and then, and it is not a disagreement of the two implementations."""
    threshold, adjacency, relation = thresholds
    if _keys(we) != _keys(ge):
        diff = set(_keys(we)) ^ set(_keys(ge))
        return all(abs(e["score"] - threshold) <= EPS for e in we + ge if _keys([e])[0] in diff)
    diff = {_rel_key(r) for r in wr} ^ {_rel_key(r) for r in gr}

    def answer(sign: int) -> set[tuple]:
        moved = (threshold, None if adjacency is None else adjacency + sign * EPS, relation + sign * EPS)
        _, rels = run(ours, [("", [text], labels)], moved)[0]
        return {_rel_key(r) for r in rels[0]}

    lenient, strict = answer(-1), answer(+1)
    return diff <= lenient - strict


def compare(
    want: list[tuple], got: list[tuple], sample, ours=None, thresholds=None
) -> tuple[int, int, float]:
    """Assert identical entities and relations; return (entities, relations, max |score delta|).

    With ``ours`` (the anyner model of ``got``) and the thresholds of the run, a text whose two
    answers differ only by borderline items (:func:`_borderline`) is left out; at most one text
    in a hundred (and at least two) may be."""
    n_ent = n_rel = n_texts = 0
    excused: list[str] = []
    worst = 0.0
    for (name, sentences, labels), (want_e, want_r), (got_e, got_r) in zip(sample, want, got, strict=True):
        for sent, we, wr, ge, gr in zip(sentences, want_e, want_r, got_e, got_r, strict=True):
            where = f"{name}: {sent!r}"
            n_texts += 1
            if we is None:  # the reference failed on this text: it keeps no span, so no entity
                assert ge == [] and gr == [], where
                continue
            same = _keys(ge) == _keys(we) and [_rel_key(r) for r in gr] == [_rel_key(r) for r in wr]
            if not same and ours is not None and _borderline(ours, sent, labels, thresholds, we, wr, ge, gr):
                excused.append(where)
                continue
            assert [{k: v for k, v in e.items() if k != "score"} for e in ge] == [
                {k: v for k, v in e.items() if k != "score"} for e in we
            ], where
            assert [_rel_key(r) for r in gr] == [_rel_key(r) for r in wr], where
            for a, b in zip(we + wr, ge + gr, strict=True):
                worst = max(worst, abs(a["score"] - b["score"]))
            n_ent += len(we)
            n_rel += len(wr)
    assert len(excused) <= max(2, n_texts // 100), f"{len(excused)} texts differ near a threshold: {excused}"
    if excused:
        print(f"{len(excused)} of {n_texts} texts differ only near a threshold: {excused}")
    assert worst <= TOL, worst
    return n_ent, n_rel, worst


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_parity_on_ood_sentences(mode, relex_models, shared, tmp_path):
    """Each relations_layer mode on 210 real sentences: anyner reads the reference's folder and
    finds what the reference finds; the reference reads the folder anyner saves and finds the same."""
    folder = relex_models(mode)
    sample = ood_sample(shared, per_set=30)  # 7 sets x 30 = 210 sentences
    assert sum(len(s) for _, s, _ in sample) >= 200
    ours = AnyNER.from_pretrained(folder)
    assert ours.config.model_type == "uni_encoder_span_relex"
    thresholds = calibrate(ours, sample)
    got = run(ours, sample, thresholds)
    n_ent, n_rel, worst = compare(run(reference(folder), sample, thresholds), got, sample, ours, thresholds)
    assert n_ent > 200 and n_rel > 200, f"too few to say anything: {n_ent} entities, {n_rel} relations"
    print(f"{mode} thresholds {thresholds}: reference folder -> anyner: {n_ent} entities, {n_rel} relations, "
          f"max |delta score| = {worst:.2e}")  # fmt: skip
    saved = ours.save_pretrained(tmp_path / "saved")
    ref_saved = reference(saved)
    assert type(ref_saved).__name__ == "UniEncoderSpanRelexGLiNER"
    assert ref_saved.config.relations_layer == mode
    n_ent, n_rel, worst = compare(run(ref_saved, sample, thresholds), got, sample, ours, thresholds)
    print(
        f"{mode}: anyner folder -> reference: {n_ent} entities, {n_rel} relations, max |delta score| = {worst:.2e}"
    )
    few = [(name, s[:5], labels) for name, s, labels in sample]
    assert (
        compare(run(ours, few, thresholds), run(AnyNER.from_pretrained(saved), few, thresholds), few)[0] > 0
    )


# ---------------------------------------------------------------------- fast checks on one small model


@pytest.fixture(scope="module")
def dot_model(relex_models) -> AnyNER:
    return AnyNER.from_pretrained(relex_models("dot"))


@pytest.fixture(scope="module")
def small_sample(shared):
    return [(name, s[:2], labels) for name, s, labels in ood_sample(shared, per_set=2)]


@pytest.fixture(scope="module")
def dot_thresholds(dot_model, small_sample):
    return calibrate(dot_model, small_sample, per_set=1)


def test_small_parity_and_entities_alone(dot_model, relex_models, small_sample, dot_thresholds):
    """The fast subset's parity check (14 sentences), and entities alone (``predict``) as the
    reference's ``predict_entities`` gives them for a relex model (its prompt ends in two <<SEP>>)."""
    ref_model = reference(relex_models("dot"))
    n_ent, n_rel, _ = compare(
        run(ref_model, small_sample, dot_thresholds),
        run(dot_model, small_sample, dot_thresholds),
        small_sample,
    )
    assert n_ent > 0 and n_rel > 0
    threshold = dot_thresholds[0]
    for _, sentences, labels in small_sample:
        want = ref_model.inference(sentences, labels, threshold=threshold, return_relations=False)
        got = dot_model.batch_predict_entities(sentences, labels, threshold=threshold)
        for w, g in zip(want, got, strict=True):
            assert [{k: v for k, v in e.items() if k != "score"} for e in g] == [
                {k: v for k, v in e.items() if k != "score"} for e in w
            ]
            assert all(abs(a["score"] - b["score"]) <= TOL for a, b in zip(w, g, strict=True))


def test_relations_point_at_returned_entities(dot_model, small_sample, dot_thresholds):
    threshold, adjacency, relation = dot_thresholds
    seen = 0
    for _, sentences, labels in small_sample:
        out = dot_model.batch_predict_relations(
            sentences, labels, RELATIONS, threshold=threshold, adjacency_threshold=adjacency,
            relation_threshold=relation,
        )  # fmt: skip
        for text, (ents, rels) in zip(sentences, out, strict=True):
            assert all(isinstance(e, Entity) for e in ents)
            for r in rels:
                assert isinstance(r, Relation) and r.label in RELATIONS and relation < r.score <= 1.0
                assert ents[r.head_index] is r.head and ents[r.tail_index] is r.tail
                assert r.head_index != r.tail_index
                d = r.to_dict()
                assert set(d) == {"head", "tail", "relation", "score"}
                assert d["head"] == {"start": r.head.start, "end": r.head.end, "text": r.head.text,
                                     "type": r.head.label, "entity_idx": r.head_index}  # fmt: skip
                assert text[r.tail.start : r.tail.end] == d["tail"]["text"]
                seen += 1
            # one text alone gives what it gives in the batch
            alone = dot_model.predict_relations(
                text, labels, RELATIONS, threshold=threshold, adjacency_threshold=adjacency,
                relation_threshold=relation,
            )  # fmt: skip
            assert [(e.start, e.end, e.label) for e in alone[0]] == [(e.start, e.end, e.label) for e in ents]
            assert [(r.head_index, r.tail_index, r.label) for r in alone[1]] == [
                (r.head_index, r.tail_index, r.label) for r in rels
            ]
            assert all(abs(a.score - b.score) <= 1e-5 for a, b in zip(alone[1], rels, strict=True))
    assert seen > 0


def test_descriptions_are_read_names_are_returned(dot_model, small_sample, dot_thresholds):
    """A relation (or label) given as name -> description scores as the description does, and
    carries the name."""
    threshold, adjacency, relation = dot_thresholds
    options = dict(threshold=threshold, adjacency_threshold=adjacency, relation_threshold=0.0)
    text, labels, plain = next(
        (text, labels, found)
        for _, sentences, labels in small_sample
        for text in sentences
        if (found := dot_model.predict_relations(text, labels, RELATIONS, **options))[1]
    )
    named = dot_model.predict_relations(
        text, {f"L{i}": lab for i, lab in enumerate(labels)}, {f"R{i}": r for i, r in enumerate(RELATIONS)},
        **options,
    )  # fmt: skip
    assert len(plain[1]) > 0 and len(named[1]) == len(plain[1])
    for a, b in zip(plain[1], named[1], strict=True):
        assert b.label == f"R{RELATIONS.index(a.label)}" and b.head.label == f"L{labels.index(a.head.label)}"
        assert abs(a.score - b.score) <= 1e-6


def test_long_text_is_windowed(dot_model, small_sample, dot_thresholds):
    """A text longer than the encoder reads: windows, every relation between returned entities."""
    threshold, adjacency, relation = dot_thresholds
    _, sentences, labels = small_sample[0]
    text = " ".join(sentences * 6)
    short = dot_model.featurizer
    try:
        dot_model.max_tokens = 128
        ents, rels = dot_model.predict_relations(
            text,
            labels,
            RELATIONS,
            threshold=threshold,
            adjacency_threshold=adjacency,
            relation_threshold=relation,
        )
    finally:
        dot_model.featurizer = short
    assert len(ents) > 0
    for r in rels:
        assert ents[r.head_index] is r.head and ents[r.tail_index] is r.tail
    assert len({(r.head_index, r.tail_index, r.label) for r in rels}) == len(rels), "no duplicates"


def test_bad_input(dot_model):
    text = "Bill Gates founded Microsoft in Albuquerque with Paul Allen."
    labels = ["person", "organization", "location"]
    with pytest.raises(ValueError, match="relations is empty"):
        dot_model.predict_relations(text, labels, [])
    with pytest.raises(ValueError, match=r"differ from the entity labels; \['location'\]"):
        dot_model.predict_relations(text, labels, ["founded", "location"])
    with pytest.raises(TypeError, match="not the string"):
        dot_model.predict_relations(text, labels, "founded")
    with pytest.raises(ValueError, match="prompt token '<<REL>>'"):
        dot_model.predict_relations(text, labels, ["a <<REL>> b"])
    with pytest.raises(ValueError, match="must not be empty or blank"):
        dot_model.predict_relations(text, labels, ["founded", " "])
    with pytest.raises(ValueError, match="relation_threshold must be a number in"):
        dot_model.predict_relations(text, labels, ["founded"], relation_threshold=2)
    with pytest.raises(ValueError, match="2 relation lists for 1 texts"):
        dot_model.batch_predict_relations([text], labels, [["a"], ["b"]])
    many = [f"relation number {i}" for i in range(3000)]
    with pytest.raises(ValueError, match="3000 relations take .* one prompt"):
        dot_model.predict_relations(text, labels, many)
    # fewer than two entities: no relations, no error
    assert dot_model.predict_relations("", labels, ["founded"]) == ([], [])
    ents, rels = dot_model.predict_relations(text, labels, ["founded"], threshold=1.0)
    assert ents == [] and rels == []
    one_word = dot_model.predict_relations("Paris", labels, ["founded"], threshold=0.0)
    assert len(one_word[0]) == 1 and one_word[1] == []
    assert dot_model.batch_predict_relations([], labels, ["founded"]) == []
    with pytest.raises(ValueError, match="relations is empty"):
        dot_model.batch_predict_relations([], labels, [])


def test_entity_models_refuse_relations(ref_v21):
    model = AnyNER.from_pretrained(ref_v21)
    with pytest.raises(NotImplementedError, match="needs a relation-extraction model"):
        model.predict_relations("Bill Gates founded Microsoft.", ["person"], ["founded"])


def test_relex_config_reader():
    base = {"model_name": "x", "span_mode": "markerV0", "relations_layer": "gat", "rel_token_index": 7}
    cfg = config_from_gliner(dict(base))
    assert cfg.model_type == "uni_encoder_span_relex"
    assert cfg.extra["relations_layer"] == "gat" and cfg.extra["rel_token_index"] == 7
    assert cfg.extra["rel_token"] == "<<REL>>" and cfg.extra["embed_rel_token"] is True
    with pytest.raises(NotImplementedError, match="triples_layer"):
        config_from_gliner(dict(base, triples_layer="distmult"))
    with pytest.raises(NotImplementedError, match="relations_layer='transformer' is not supported"):
        config_from_gliner(dict(base, relations_layer="transformer"))
    with pytest.raises(NotImplementedError, match="span_mode='token_level'"):
        config_from_gliner(dict(base, span_mode="token_level"))
    with pytest.raises(CheckpointError, match="rel_token"):
        config_from_gliner(dict(base, rel_token="<<SEP>>"))
