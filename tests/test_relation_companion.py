"""A model folder that carries a relation model (``relations/``, stored as a delta on the entity
model's weights): the delta file format, training with frozen parameters, and loading the
relation model on the first ``predict_relations`` call. The built-in model ships this way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

from anyner import AnyNER  # noqa: E402
from anyner.checkpoint import CheckpointError, iter_weights  # noqa: E402
from anyner.delta import DELTA_NAME, is_delta, write_delta  # noqa: E402
from tests.conftest import (  # noqa: E402
    RELEX_LABELS,
    RELEX_RELATIONS,
    RELEX_SENTENCES,
    relex_train_config,
    write_relation_data,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _files(tmp_path: Path) -> tuple[Path, Path, dict]:
    g = torch.Generator().manual_seed(0)
    base = {
        "same": torch.randn(3, 4, generator=g),
        "grows": torch.randn(5, 2, generator=g).half(),
        "changes": torch.randn(6, generator=g),
        "ids": torch.arange(4),
    }
    full = dict(base)
    full["grows"] = torch.cat([base["grows"], torch.randn(2, 2, generator=g).half()])
    full["changes"] = base["changes"] + 1
    full["new"] = torch.randn(2, 2, generator=g)
    save_file(base, str(tmp_path / "base.safetensors"))
    (tmp_path / "m").mkdir()
    save_file(full, str(tmp_path / "m" / "full.safetensors"))
    return tmp_path / "base.safetensors", tmp_path / "m" / "full.safetensors", full


def test_a_delta_stores_only_what_changed_and_rebuilds_the_whole(tmp_path):
    base, full, want = _files(tmp_path)
    out = tmp_path / "m" / DELTA_NAME
    counts = write_delta(base, full, out)
    assert counts == {"kept": 2, "changed": 1, "new": 1, "grown": 1, "numbers": 6 + 4 + 4}
    assert is_delta(out) and not is_delta(base)
    assert set(load_file(str(out))) == {"grows", "changes", "new"}  # "grows" holds its new rows only
    assert load_file(str(out))["grows"].shape == (2, 2)
    got = {k: t.clone() for k, t in iter_weights(out)}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
    assert {k for k, _ in iter_weights(out, plain=True)} == {"grows", "changes", "new"}


def test_a_delta_refuses_other_base_weights_and_impossible_changes(tmp_path):
    base, full, _ = _files(tmp_path)
    out = tmp_path / "m" / DELTA_NAME
    write_delta(base, full, out)
    moved = base.with_name("elsewhere.safetensors")
    base.rename(moved)
    with pytest.raises(CheckpointError, match="which is missing"):
        list(iter_weights(out))
    other = load_file(str(moved))
    other["same"] = other["same"] + 1
    save_file(other, str(base))
    with pytest.raises(CheckpointError, match="another version"):
        list(iter_weights(out))
    shrunk = load_file(str(full))
    shrunk["grows"] = shrunk["grows"][:3]
    save_file(shrunk, str(tmp_path / "shrunk.safetensors"))
    with pytest.raises(ValueError, match="grows: shape"):
        write_delta(base, tmp_path / "shrunk.safetensors", tmp_path / "x.safetensors")
    del shrunk["grows"]
    save_file(shrunk, str(tmp_path / "lacking.safetensors"))
    with pytest.raises(ValueError, match="lacks 1 tensors"):
        write_delta(base, tmp_path / "lacking.safetensors", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_freeze_keeps_parameters_and_names_unknown_prefixes(tmp_path, tiny_bert_dir):
    from anyner.train.loop import Trainer

    cfg = relex_train_config(tmp_path, tiny_bert_dir, layer="none", steps=4, freeze=["nope."])
    with pytest.raises(ValueError, match=r"train.freeze: \['nope.'\] name no parameter"):
        Trainer(cfg, progress=False, log=lambda m: None)
    frozen = ["encoder.transformer.embeddings.", "encoder.transformer.encoder.layer.0.attention."]
    cfg = relex_train_config(tmp_path, tiny_bert_dir, layer="none", steps=4, freeze=frozen)
    logged: list[str] = []
    trainer = Trainer(cfg, progress=False, log=logged.append)
    before = {n: p.detach().clone() for n, p in trainer.net.named_parameters()}
    trainer.fit()
    assert any(m.startswith("frozen: ") for m in logged)
    for n, p in trainer.net.named_parameters():
        if n.startswith(tuple(frozen)):
            assert torch.equal(p, before[n]), n
    moved = [n for n, p in trainer.net.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("encoder.transformer.encoder.layer.0.output.") for n in moved)
    assert any(n.startswith("pair_proj.") for n in moved)


@pytest.fixture(scope="module")
def companion(tmp_path_factory, tiny_bert_dir):
    """An entity model folder with a relation model in ``relations/`` (a delta on its weights),
    and the relation model's full folder: (entity folder, full relation folder)."""
    from anyner.train.loop import Trainer

    tmp = tmp_path_factory.mktemp("companion")
    torch.manual_seed(0)
    entity = AnyNER.from_encoder(tiny_bert_dir, hidden_size=128, max_width=4, num_rnn_layers=0)
    entity_dir = entity.save_pretrained(tmp / "entity")
    cfg = relex_train_config(
        tmp, tiny_bert_dir, layer="none", steps=6, freeze=["encoder.transformer.embeddings."]
    )
    cfg.model.init_from = str(entity_dir)
    Trainer(cfg, progress=False, log=lambda m: None).fit()
    full = tmp / "run" / "model"
    rel = entity_dir / "relations"
    rel.mkdir()
    counts = write_delta(entity_dir / "model.safetensors", full / "model.safetensors", rel / DELTA_NAME)
    assert counts["grown"] == 1 and counts["kept"] >= 3  # the <<REL>> row; the frozen embeddings
    for f in full.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, rel / f.name)
    return entity_dir, full


def test_the_relation_model_loads_on_first_use_and_answers_as_the_full_folder(companion):
    entity_dir, full = companion
    model = AnyNER.from_pretrained(entity_dir)
    assert model.config.model_type == "uni_encoder_span" and model.extracts_relations
    assert model.relation_folder == entity_dir / "relations" and model._relation_model is None
    text = " ".join(RELEX_SENTENCES[0][0])
    ents = model.predict(text, RELEX_LABELS, threshold=0.0)
    assert model._relation_model is None  # entities alone never load it
    assert ents == AnyNER.from_pretrained(entity_dir).predict(text, RELEX_LABELS, threshold=0.0)
    got = model.predict_relations(text, RELEX_LABELS, RELEX_RELATIONS, threshold=0.0, relation_threshold=0.0)
    loaded = model.relation_model()
    assert loaded is model._relation_model and loaded.config.model_type == "uni_encoder_span_relex"
    want = AnyNER.from_pretrained(full).predict_relations(
        text, RELEX_LABELS, RELEX_RELATIONS, threshold=0.0, relation_threshold=0.0
    )
    assert [(e.start, e.end, e.label) for e in got[0]] == [(e.start, e.end, e.label) for e in want[0]]
    assert [(r.head_index, r.tail_index, r.label) for r in got[1]] == [
        (r.head_index, r.tail_index, r.label) for r in want[1]
    ]
    assert len(got[1]) > 0
    assert [r.score for r in got[1]] == pytest.approx([r.score for r in want[1]], abs=1e-6)
    model.predict_relations(text, RELEX_LABELS, RELEX_RELATIONS)
    assert model.relation_model() is loaded  # loaded once
    with pytest.raises(ValueError, match="relation"):
        model.predict_relations(text, RELEX_LABELS, [])
    with pytest.raises(
        ValueError, match="threshold='auto' has no calibration for this model's relation model"
    ):
        model.predict_relations(text, RELEX_LABELS, RELEX_RELATIONS, threshold="auto")


def test_a_damaged_or_mismatched_relation_folder_is_a_clear_error(companion, tmp_path):
    entity_dir, _ = companion
    copy = shutil.copytree(entity_dir, tmp_path / "entity")
    weights = load_file(str(copy / "model.safetensors"))
    weights = {k: v + 1 if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(copy / "model.safetensors"))  # the entity weights changed after the delta
    model = AnyNER.from_pretrained(copy)
    model.predict(" ".join(RELEX_SENTENCES[0][0]), RELEX_LABELS)  # the entity model itself is fine
    with pytest.raises(CheckpointError, match="another version"):
        model.predict_relations(" ".join(RELEX_SENTENCES[0][0]), RELEX_LABELS, RELEX_RELATIONS)
    meta = json.loads((copy / "relations" / "gliner_config.json").read_text())
    assert meta["relations_layer"] == "none"


def test_cli_serve_and_evaluation_see_the_relations(companion, capsys, tmp_path):
    from anyner.cli import main
    from anyner.evaluate_relations import evaluate_relations
    from anyner.serve import extracts_relations

    entity_dir, full = companion
    data = write_relation_data(tmp_path)
    got = evaluate_relations(AnyNER.from_pretrained(entity_dir), data, threshold=0.1, relation_threshold=0.1)
    want = evaluate_relations(AnyNER.from_pretrained(full), data, threshold=0.1, relation_threshold=0.1)
    assert got == want and got.boundaries.gold == 4
    text = " ".join(RELEX_SENTENCES[0][0])
    assert main(["predict", text, "-l", ",".join(RELEX_LABELS), "--relations", ",".join(RELEX_RELATIONS),
                 "-m", str(entity_dir), "--format", "json", "--threshold", "0"]) == 0  # fmt: skip
    record = json.loads(capsys.readouterr().out)
    record = record[0] if isinstance(record, list) else record
    assert "relations" in record and record["entities"]
    assert extracts_relations(AnyNER.from_pretrained(entity_dir))
