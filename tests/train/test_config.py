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
