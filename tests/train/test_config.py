"""Training configs: errors name the setting; relative paths are read from the config's folder."""

from __future__ import annotations

import pytest

from anyner.train import load_train_config


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


def test_model_type_in_the_model_table(tmp_path):
    cfg = tmp_path / "token.toml"
    cfg.write_text('[model]\ntype = "uni_encoder_token"\n[[data]]\npath = "x.jsonl"\n')
    network = load_train_config(cfg).model.network
    assert (network.model_type, network.span_mode) == ("uni_encoder_token", "token_level")
    cfg.write_text('[model]\ntype = "token"\n[[data]]\npath = "x.jsonl"\n')
    with pytest.raises(ValueError, match=r"type = 'token' is not a model type; known: uni_encoder_span"):
        load_train_config(cfg)
    cfg.write_text('[model]\ntype = "uni_encoder_token"\nspan_mode = "marker"\n[[data]]\npath = "x.jsonl"\n')
    with pytest.raises(
        ValueError, match="span_mode='marker' is not supported for model_type='uni_encoder_token'"
    ):
        load_train_config(cfg)


def test_bi_encoder_type_takes_a_labels_encoder(tmp_path):
    cfg = tmp_path / "bi.toml"
    cfg.write_text('[model]\ntype = "bi_encoder_span"\n[[data]]\npath = "x.jsonl"\n')
    network = load_train_config(cfg).model.network
    assert (network.model_type, network.span_mode, network.labels_encoder) == (
        "bi_encoder_span",
        "markerV0",
        "minilm",
    )
    cfg.write_text('[model]\nlabels_encoder = "minilm"\n[[data]]\npath = "x.jsonl"\n')
    with pytest.raises(ValueError, match="labels_encoder is only for bi-encoder types"):
        load_train_config(cfg)


def test_init_from_builtin_names_the_builtin_model(tmp_path):
    cfg = tmp_path / "ft.toml"
    cfg.write_text('[model]\ninit_from = "builtin"\n[[data]]\npath = "x.jsonl"\n')
    assert load_train_config(cfg).model.init_from == "builtin"  # not a path beside the config
    cfg.write_text('[model]\ninit_from = "my-model"\n[[data]]\npath = "x.jsonl"\n')
    assert load_train_config(cfg).model.init_from == str(tmp_path / "my-model")
