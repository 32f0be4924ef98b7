"""Training: overfit a tiny model (after spaCy's test_overfitting_IO), exact resume, config errors."""

from __future__ import annotations

import json

import pytest
import torch

from anyner import AnyNER
from anyner.train import Trainer, load_train_config
from anyner.train.config import config_from_dict

SENTENCES = [
    (["Alice", "lives", "in", "Paris", "."], [[0, 0, "person"], [3, 3, "city"]]),
    (["Bob", "Smith", "visited", "London", "yesterday", "."], [[0, 1, "person"], [3, 3, "city"]]),
    (["The", "mayor", "of", "Rome", "met", "Carol", "."], [[3, 3, "city"], [5, 5, "person"]]),
]


def write_data(folder):
    path = folder / "train.jsonl"
    with open(path, "w") as f:
        for words, ner in SENTENCES:
            f.write(json.dumps({"tokenized_text": words, "ner": ner}) + "\n")
    return path


def tiny_config(tmp_path, encoder, dropout=0.0, hidden=32, **train):
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
            },
            "data": [{"path": str(write_data(tmp_path))}],
            "train": settings,
            "output": {"dir": str(tmp_path / "run"), "save_every": 50, "log_every": 20},
        }
    )


def gold(words, ner):
    text = " ".join(words)
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
    return {(starts[s], starts[e] + len(words[e]), lab) for s, e, lab in ner}, text


def f1_on_sentences(model):
    correct = predicted = total = 0
    for words, ner in SENTENCES:
        want, text = gold(words, ner)
        got = {(e.start, e.end, e.label) for e in model.predict(text, ["person", "city"])}
        correct += len(want & got)
        predicted += len(got)
        total += len(want)
    p, r = correct / max(1, predicted), correct / max(1, total)
    return 2 * p * r / max(1e-9, p + r)


def test_overfitting_then_save_and_reload(tmp_path, minilm_dir):
    """A pretrained encoder learns three sentences to F1 = 1.0 and keeps it through save and reload.

    (A tiny random encoder does not learn to tell its label tokens apart in a few hundred
    steps; MiniLM does, after about 170.)
    """
    cfg = tiny_config(
        tmp_path, minilm_dir, hidden=128, steps=200, batch_size=3, lr_encoder=1e-4, lr_others=3e-3
    )
    trainer = Trainer(cfg, progress=False, log=lambda m: None)
    model = trainer.fit()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < 0.1 * metrics[0]["loss"]
    assert f1_on_sentences(model) == 1.0
    reloaded = AnyNER.from_pretrained(tmp_path / "run" / "model")
    assert f1_on_sentences(reloaded) == 1.0
    text = " ".join(SENTENCES[0][0])
    assert reloaded.predict(text, ["person", "city"]) == model.predict(text, ["person", "city"])


def test_resume_ends_with_the_same_weights(tmp_path, tiny_bert_dir):
    """An interrupted run resumed from its checkpoint ends exactly where an uninterrupted one does."""
    kw = dict(
        steps=8, batch_size=2, drop_labels=0.5, neg_ratio=1.0, dropout=0.4
    )  # dropout draws from the RNG too

    def trainer(folder):
        return Trainer(
            tiny_config(tmp_path / folder, tiny_bert_dir, **kw), progress=False, log=lambda m: None
        )

    uninterrupted = trainer("a")
    uninterrupted.fit()
    first = trainer("b")
    first.fit(until_step=3)
    assert first.step == 3 and first.latest_checkpoint().name == "step-00000003"
    second = trainer("b")  # a new process would build everything again, then resume
    second.fit(resume=True)
    assert second.step == 8
    for (name, p), (_, q) in zip(
        uninterrupted.net.state_dict().items(), second.net.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name
    fresh = trainer("c")
    fresh.fit(until_step=3)
    assert not torch.equal(fresh.net.label_proj[0].weight, second.net.label_proj[0].weight), (
        "training moved the weights"
    )


def test_checkpoints_keep_last_k_and_ignore_half_written(tmp_path, tiny_bert_dir):
    cfg = tiny_config(tmp_path, tiny_bert_dir, steps=6)
    cfg.output.save_every, cfg.output.keep = 2, 2
    trainer = Trainer(cfg, progress=False, log=lambda m: None)
    trainer.fit()
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert ckpts == ["step-00000004", "step-00000006"]
    (tmp_path / "run" / "checkpoints" / ".step-00000008.tmp").mkdir()  # a save cut off by a kill
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-00000008\n")
    assert trainer.latest_checkpoint().name == "step-00000006"


def test_config_errors_name_the_setting(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nsteps = 0\n[[data]]\npath = "x.jsonl"\n')
    with pytest.raises(ValueError, match=r"bad\.toml: train\.steps must be a positive integer"):
        load_train_config(bad)
    bad.write_text('[train]\nstepz = 3\n[[data]]\npath = "x.jsonl"\n')
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['stepz'\]"):
        load_train_config(bad)
    bad.write_text("[train\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_train_config(bad)
    good = tmp_path / "good.toml"
    good.write_text('[[data]]\npath = "data/x.jsonl"\n[output]\ndir = "runs/a"\n')
    cfg = load_train_config(good)
    assert cfg.data[0].path == str(tmp_path / "data" / "x.jsonl")
    assert cfg.output.dir == str(tmp_path / "runs" / "a")
