"""Training the span pre-filter's layer (:mod:`anyner.prefilter`) for a trained model."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from anyner.pipeline import AnyNER
from anyner.prefilter import SpanPrefilter, check_supported, span_hidden
from anyner.train.config import TrainConfig
from anyner.train.loop import Trainer


def train_span_filter(
    model: AnyNER,
    config: TrainConfig,
    steps: int = 400,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> SpanPrefilter:
    """Train the pre-filter's layer for ``model`` on ``config``'s data (its ``[[data]]`` and sampling).

    The model is frozen: its span hidden vectors are computed without gradients, and only the
    layer (4D + 1 numbers) learns, with binary cross-entropy on "the span is an entity of some
    type" (positives weighted by the negatives-to-positives ratio of each batch). Returns a
    :class:`SpanPrefilter` with ``top_k`` 64 (choose it at use).
    """
    check_supported(model)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    trainer = Trainer.__new__(Trainer)  # only its data pipeline: the model is the one given
    trainer.setup_data(config, model, log)
    net = model.model
    net.eval()
    D4 = net.span.out_project[3].weight.shape[1]
    layer = torch.nn.Linear(D4, 1).to(model.device)
    torch.nn.init.zeros_(layer.weight)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    start = time.time()
    for step in range(steps):
        items = [trainer.mix.item(seed, step, j) for j in range(batch_size)]
        batch, gold = trainer.batch(items)
        tensors = batch.tensors(model.device)
        with torch.no_grad():
            h, valid = span_hidden(net, tensors)
        targets, mask = gold.tensors(model.device)
        positive = targets.amax(-1)  # (B, W, K): an entity of any label
        keep = valid & (mask.amax(-1) > 0)
        x, y = h[keep], positive[keep]
        n_pos = float(y.sum())
        weight = torch.tensor((len(y) - n_pos) / max(n_pos, 1.0), device=model.device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            layer(x).squeeze(-1), y, pos_weight=weight
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log(
                f"span filter step {step + 1}/{steps} loss {float(loss.detach()):.4f} ({time.time() - start:.0f} s)"
            )
    w = layer.weight.detach().float().cpu().numpy().reshape(-1)
    return SpanPrefilter(w, float(layer.bias.detach().float().cpu()), top_k=64)


__all__ = ["train_span_filter"]
