"""The training-time dropout with bulk-drawn masks: its rate, its scaling, its seeding, and
that putting it into a network and taking it out again changes nothing else."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from anyner import AnyNER
from anyner.train.dropout import (
    ATTENTION,
    Dropout,
    fast_dropout,
    keep_mask,
    use_fast_dropout,
    use_torch_dropout,
)


@pytest.mark.parametrize("p", [0.1, 0.4])
def test_rate_and_scale(p):
    torch.manual_seed(0)
    y = fast_dropout(torch.ones(1000, 1000), p)
    assert abs(float((y == 0).float().mean()) - p) < 0.003  # 1e6 draws: about 6 standard errors
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))


def test_masks_follow_torchs_seed_and_differ_between_calls():
    torch.manual_seed(5)
    a, b = keep_mask((10_000,), 0.5), keep_mask((10_000,), 0.5)
    torch.manual_seed(5)
    assert torch.equal(a, keep_mask((10_000,), 0.5))
    assert not torch.equal(a, b)


def test_eval_mode_and_zero_rate_are_the_identity():
    x = torch.randn(3, 4)
    assert fast_dropout(x, 0.5, training=False) is x and fast_dropout(x, 0.0) is x
    assert torch.equal(Dropout(0.3).eval()(x), x)


def test_a_network_with_fast_dropout_computes_the_same_in_eval_and_is_restored(tmp_path, minilm_dir):
    model = AnyNER.from_encoder(str(minilm_dir), hidden_size=32)
    net = model.model.eval()
    ids = torch.randint(1000, 2000, (2, 20))
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, 14:] = 0
    with torch.no_grad():
        before = net.encoder(ids, mask)
    use_fast_dropout(net)
    assert net.encoder.transformer.config._attn_implementation == ATTENTION
    assert not net.training and all(not m.training for m in net.modules())  # modes kept
    swapped = [m for m in net.modules() if isinstance(m, Dropout)]
    assert swapped and not any(type(m) is nn.Dropout for m in net.modules())
    with torch.no_grad():
        assert torch.equal(net.encoder(ids, mask), before)
    net.train()
    torch.manual_seed(0)
    a = net.encoder(ids, mask)
    torch.manual_seed(0)
    b = net.encoder(ids, mask)
    assert torch.equal(a, b) and not torch.allclose(a, before)  # dropout acts, reproducibly
    a.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.encoder.parameters() if p.grad is not None)
    active = model.save_pretrained(tmp_path / "while-active")  # as a checkpoint mid-training
    assert ATTENTION not in (active / "gliner_config.json").read_text()
    use_torch_dropout(net.eval())
    assert net.encoder.transformer.config._attn_implementation == "sdpa"
    assert not any(isinstance(m, Dropout) for m in net.modules())
    with torch.no_grad():
        assert torch.equal(net.encoder(ids, mask), before)
    folder = model.save_pretrained(tmp_path / "saved")
    assert ATTENTION not in json.dumps(json.loads((folder / "gliner_config.json").read_text()))
