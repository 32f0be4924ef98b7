"""Parity with the reference ``gliner`` package on the same checkpoints and real sentences.

The reference builds and saves each model; anyner loads the folder. Entity lists
must be identical and scores within 1e-4 (a label picked from two near-tied ones is
counted and allowed once in 500 entities: see ``compare``). The reverse direction (anyner saves,
the reference loads) and a second encoder family are checked too.
"""

from __future__ import annotations

import pytest

from anyner import AnyNER
from tests.conftest import build_reference, ood_sample

pytestmark = pytest.mark.slow  # builds reference models and compares hundreds of sentences

gliner = pytest.importorskip("gliner", reason="the reference gliner package is not installed")

TOL = 1e-4


def reference(folder):
    return gliner.GLiNER.from_pretrained(str(folder), local_files_only=True)


def compare(ref_model, our_model, sample, flat: bool) -> tuple[int, float, int]:
    """Assert identical entities; return (entities compared, max |score delta|, near-ties).

    One difference is tolerated, and counted: a span both libraries keep, with another
    label, where the two labels' scores are within TOL of each other. Random heads make
    such near-ties, and float rounding (which differs between CPUs) picks either label.
    At most one entity in 500 may differ that way.
    """
    n, worst, ties = 0, 0.0, 0
    for name, sentences, labels in sample:
        theirs = ref_model.batch_predict_entities(
            sentences, labels, threshold=0.5, flat_ner=flat, batch_size=8
        )
        ours = our_model.batch_predict_entities(sentences, labels, threshold=0.5, flat_ner=flat, batch_size=8)
        for sent, a, b in zip(sentences, theirs, ours, strict=True):
            where = f"{name} ({'flat' if flat else 'nested'}): {sent!r}"
            assert len(b) == len(a), where
            for x, y in zip(a, b, strict=True):
                assert (y["start"], y["end"], y["text"]) == (x["start"], x["end"], x["text"]), where
                worst = max(worst, abs(x["score"] - y["score"]))
                if y["label"] != x["label"]:
                    assert abs(x["score"] - y["score"]) <= TOL, f"{where}: {x} != {y}"
                    ties += 1
            n += len(a)
    assert worst <= TOL
    assert ties <= n // 500, f"{ties} near-tied labels in {n} entities"
    return n, worst, ties


@pytest.mark.parametrize("which", ["ref_v21", "ref_v0"])
def test_parity_on_ood_sentences(which, request, shared):
    folder = request.getfixturevalue(which)
    sample = ood_sample(shared, per_set=45)  # 7 sets x 45 = 315 sentences
    assert sum(len(s) for _, s, _ in sample) >= 300
    ref_model, our_model = reference(folder), AnyNER.from_pretrained(folder)
    for flat in (True, False):
        n, worst, ties = compare(ref_model, our_model, sample, flat)
        assert n > 300, "too few entities to say anything: the random head should fire"
        print(
            f"{which} flat={flat}: {n} entities, {n - ties} identical, {ties} near-tied labels, max |delta score| = {worst:.2e}"
        )


def test_token_level_parity_on_ood_sentences(ref_token, shared):
    """Token-level checkpoints: start/end/inside scores, spans of any width, flat and nested."""
    sample = ood_sample(shared, per_set=45)  # 315 sentences
    ref_model, our_model = reference(ref_token), AnyNER.from_pretrained(ref_token)
    assert our_model.config.model_type == "uni_encoder_token"
    for flat in (True, False):
        n, worst, ties = compare(ref_model, our_model, sample, flat)
        assert n > 300, "too few entities to say anything: the random head should fire"
        print(f"token flat={flat}: {n} entities, {ties} near-tied labels, max |delta score| = {worst:.2e}")


def test_token_level_reverse_direction(ref_token, tmp_path, shared):
    """anyner saves a token-level model, the reference loads it as one, the entities are the same."""
    ours = AnyNER.from_pretrained(ref_token)
    out = ours.save_pretrained(tmp_path / "saved")
    ref_model = reference(out)
    assert type(ref_model).__name__ == "UniEncoderTokenGLiNER"
    sample = ood_sample(shared, per_set=8)
    assert compare(ref_model, ours, sample, flat=True)[0] > 0
    assert compare(ref_model, AnyNER.from_pretrained(out), sample, flat=False)[0] > 0


@pytest.mark.parametrize("which", ["ref_bi_span", "ref_bi_token"])
def test_bi_encoder_parity_on_ood_sentences(which, request, shared):
    """Bi-encoder checkpoints (span and token forms): the text and the labels read apart."""
    folder = request.getfixturevalue(which)
    sample = ood_sample(shared, per_set=45)  # 315 sentences
    ref_model, our_model = reference(folder), AnyNER.from_pretrained(folder)
    assert our_model.config.model_type == which.replace("ref_", "").replace("bi_", "bi_encoder_")
    for flat in (True, False):
        n, worst, ties = compare(ref_model, our_model, sample, flat)
        assert n > 300, "too few entities to say anything: the random head should fire"
        print(f"{which} flat={flat}: {n} entities, {ties} near-tied labels, max |delta score| = {worst:.2e}")


@pytest.mark.parametrize("which", ["ref_bi_span", "ref_bi_token"])
def test_bi_encoder_reverse_direction(which, request, tmp_path, shared):
    ours = AnyNER.from_pretrained(request.getfixturevalue(which))
    out = ours.save_pretrained(tmp_path / "saved")
    assert (out / "labels_tokenizer" / "tokenizer_config.json").is_file()
    ref_model = reference(out)
    assert (
        type(ref_model).__name__
        == {"ref_bi_span": "BiEncoderSpanGLiNER", "ref_bi_token": "BiEncoderTokenGLiNER"}[which]
    )
    sample = ood_sample(shared, per_set=8)
    assert compare(ref_model, ours, sample, flat=True)[0] > 0
    assert compare(ref_model, AnyNER.from_pretrained(out), sample, flat=False)[0] > 0


def test_reverse_direction(ref_v21, tmp_path, shared):
    """anyner saves (safetensors), the reference loads, the entities are the same."""
    ours = AnyNER.from_pretrained(ref_v21)
    out = ours.save_pretrained(tmp_path / "saved")
    assert (out / "model.safetensors").is_file()
    assert not (out / "pytorch_model.bin").exists()
    sample = ood_sample(shared, per_set=8)
    n, *_ = compare(reference(out), ours, sample, flat=True)
    assert n > 0
    again = AnyNER.from_pretrained(out)  # and anyner reloads its own save
    n2, *_ = compare(reference(out), again, sample, flat=False)
    assert n2 > 0


def test_second_encoder_family_deberta(deberta_dir, tmp_path, shared):
    folder = build_reference(
        tmp_path / "ref_deberta", deberta_dir, seed=2, hidden_size=256, span_mode="markerV0", num_rnn_layers=1
    )
    ours = AnyNER.from_pretrained(folder)
    assert type(ours.model.encoder.transformer).__name__ == "DebertaV2Model"
    sample = ood_sample(shared, per_set=10)
    for flat in (True, False):
        n, *_ = compare(reference(folder), ours, sample, flat)
        assert n > 0


def test_no_rnn_and_same_width_encoder(minilm_dir, tmp_path, shared):
    """num_rnn_layers 0 and hidden_size equal to the encoder's (no projection layer)."""
    folder = build_reference(
        tmp_path / "ref_norrn", minilm_dir, seed=3, hidden_size=384, span_mode="markerV0", num_rnn_layers=0
    )
    ours = AnyNER.from_pretrained(folder)
    assert ours.model.rnn is None and ours.model.encoder.projection is None
    n, *_ = compare(reference(folder), ours, ood_sample(shared, per_set=6), flat=True)
    assert n > 0
