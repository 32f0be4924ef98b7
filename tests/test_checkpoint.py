"""Loading errors: every broken folder gets an error that names the file and the problem."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from anyner import AnyNER
from anyner.checkpoint import CheckpointError, config_from_gliner, gliner_to_anyner_key
from anyner.config import AnyNERConfig


@pytest.fixture(scope="module")
def saved(tmp_path_factory, minilm_dir):
    torch.manual_seed(0)
    model = AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=0)
    return model.save_pretrained(tmp_path_factory.mktemp("saved") / "m")


def copy_folder(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AnyNER.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="gliner_config.json"):
        AnyNER.from_pretrained(tmp_path)


def test_bad_json_names_the_file(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    (folder / "gliner_config.json").write_text('{"span_mode": "markerV0",')
    with pytest.raises(CheckpointError, match=r"gliner_config\.json is not valid JSON"):
        AnyNER.from_pretrained(folder)


def test_no_weights(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="holds no weights"):
        AnyNER.from_pretrained(folder)


def test_truncated_weights(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot read weights from .*model.safetensors"):
        AnyNER.from_pretrained(folder)


def test_wrong_shape_names_the_tensor(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state["prompt_rep_layer.0.weight"] = torch.zeros(3, 3)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"prompt_rep_layer\.0\.weight has shape \(3, 3\)"):
        AnyNER.from_pretrained(folder)


def test_missing_and_unexpected_keys(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    del state["prompt_rep_layer.3.bias"]
    state["something.else"] = torch.zeros(1)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"missing 1 tensors .*prompt_rep_layer\.3\.bias.*1 unexpected.*something\.else"
    ):
        AnyNER.from_pretrained(folder)


def test_config_and_weights_from_different_models(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    config = json.loads((folder / "gliner_config.json").read_text())
    config["hidden_size"] = 128
    (folder / "gliner_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not belong together"):
        AnyNER.from_pretrained(folder)


def test_pytorch_bin_loads_and_pickled_code_is_refused(saved, tmp_path):
    folder = copy_folder(saved, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    assert AnyNER.from_pretrained(folder).predict("Bill Gates", ["person"], threshold=0.0)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError, match="cannot read weights"):
        AnyNER.from_pretrained(folder)


def test_hub_id_offline_error_names_the_id_and_the_fix():
    with pytest.raises(OSError) as info:
        AnyNER.from_pretrained("urchade/gliner_small-v2.1")
    message = str(info.value)
    assert "urchade/gliner_small-v2.1" in message and "Hub could not be reached" in message
    assert "local folder" in message


@pytest.mark.parametrize(
    "field, value",
    [
        ("span_mode", "spanV1"),
        ("labels_decoder", "gpt2"),
        ("relations_layer", "biaffine"),
        ("post_fusion_schema", "l2l-l2t"),
        ("fuse_layers", True),
        ("subtoken_pooling", "mean"),
    ],
)
def test_unsupported_variants_name_field_and_value(field, value):
    with pytest.raises(NotImplementedError, match=rf"{field}={value!r}".replace("[", r"\[")):
        config_from_gliner({"model_name": "x", field: value})


def test_bi_encoder_configs_read_as_their_own_types():
    span = config_from_gliner({"model_name": "x", "labels_encoder": "BAAI/bge-small-en-v1.5"})
    assert (span.model_type, span.labels_encoder) == ("bi_encoder_span", "BAAI/bge-small-en-v1.5")
    token = config_from_gliner({"model_name": "x", "labels_encoder": "y", "span_mode": "token_level"})
    assert (token.model_type, token.span_mode) == ("bi_encoder_token", "token_level")
    with pytest.raises(ValueError, match="needs labels_encoder"):
        AnyNERConfig(model_type="bi_encoder_span")
    with pytest.raises(ValueError, match="labels_encoder must be None"):
        AnyNERConfig(labels_encoder="y")


def test_token_level_config_reads_as_its_own_type():
    cfg = config_from_gliner({"model_name": "x", "span_mode": "token_level", "num_rnn_layers": 0})
    assert (cfg.model_type, cfg.span_mode, cfg.num_rnn_layers) == ("uni_encoder_token", "token_level", 0)
    # the token-level extension with a span head is another network: refused by name
    with pytest.raises(NotImplementedError, match="represent_spans=True"):
        config_from_gliner({"model_name": "x", "span_mode": "token_level", "represent_spans": True})
    # a span mode that belongs to the other type is refused when the config is made
    with pytest.raises(NotImplementedError, match="span_mode='token_level'.*uni_encoder_span"):
        AnyNERConfig(span_mode="token_level")


def test_other_word_splitter_loads_with_a_warning():
    with pytest.warns(UserWarning, match="words_splitter_type='polyglot'"):
        cfg = config_from_gliner({"words_splitter_type": "polyglot"})
    assert cfg.extra["words_splitter_type"] == "polyglot"


def test_old_config_fields():
    assert config_from_gliner({"has_rnn": False}).num_rnn_layers == 0
    assert config_from_gliner({"has_rnn": True}).num_rnn_layers == 1
    assert config_from_gliner({}).num_rnn_layers == 1
    kept = config_from_gliner({"lr_encoder": "1e-5", "warmup_ratio": 3000, "root_dir": "x"})
    assert kept.extra == {"lr_encoder": "1e-5", "warmup_ratio": 3000, "root_dir": "x"}


def test_key_map():
    assert (
        gliner_to_anyner_key("token_rep_layer.bert_layer.model.encoder.layer.0.x")
        == "encoder.transformer.encoder.layer.0.x"
    )
    assert (
        gliner_to_anyner_key("model.span_rep_layer.span_rep_layer.out_project.0.weight")
        == "span.out_project.0.weight"
    )
    assert gliner_to_anyner_key("_orig_mod.prompt_rep_layer.3.bias") == "label_proj.3.bias"
    assert gliner_to_anyner_key("unknown.weight") is None


def test_safetensors_are_read_one_tensor_at_a_time_exactly(tmp_path):
    from anyner.checkpoint import iter_weights

    tensors = {
        "a": torch.randn(3, 4),
        "b": torch.randn(5).half(),
        "c": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "d": torch.zeros(0, 2),
        "e": torch.randn(2, 2).to(torch.bfloat16),
    }
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    got = {k: t.clone() for k, t in iter_weights(path)}  # each tensor is valid until the next is read
    want = load_file(str(path))
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    path.write_bytes(path.read_bytes()[:-4])  # the last tensor's bytes cut short
    with pytest.raises(CheckpointError, match=r"w\.safetensors"):
        list(iter_weights(path))


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_meta_build_loads_the_same_model_as_copying_into_a_built_one(saved, tmp_path, monkeypatch, weights):
    """The one-copy path (built on the meta device, tensors assigned) against the plain path
    (built, then copied into), which a model with unknown buffers takes."""
    from anyner import checkpoint
    from anyner.model.gliner import GLiNERModel

    folder = copy_folder(saved, tmp_path / "m")
    if weights.endswith(".bin"):
        torch.save(load_file(folder / "model.safetensors"), folder / weights)
        (folder / "model.safetensors").unlink()
    config = checkpoint.read_config(folder)
    hf_config = checkpoint.encoder_hf_config(config)
    hf_config.vocab_size = config.vocab_size
    make = lambda: GLiNERModel(config, hf_config)  # noqa: E731
    fast = checkpoint.build_and_load(make, folder / weights)
    monkeypatch.setattr(checkpoint, "_BUFFER_RULES", {})  # every buffer is now unknown
    plain = checkpoint.build_and_load(make, folder / weights)
    a, b = fast.state_dict(), plain.state_dict()
    assert set(a) == set(b)
    for key in a:
        assert not a[key].is_meta and a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key
    assert all(p.requires_grad for p in fast.parameters())  # trainable as a built model is
