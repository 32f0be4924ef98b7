"""Span and label scoring heads, with the algebra that keeps them cheap.

Both span modes start from per-word start and end vectors and combine them
linearly before a non-linearity (markerV0) or before the dot product with the
label (marker). That linearity lets every per-span matrix product be replaced by
per-word or per-label products:

* markerV0: ``out_project`` is Linear(2D, 4D) -> ReLU -> Linear(4D, D). The first
  Linear splits into a start part and an end part computed once per word; the
  last Linear is folded into the label vectors: ``(W2 h + b2) . q = h . (W2^T q) + b2 . q``.
* marker: ``out_project`` is one Linear(2D, D) after a ReLU, so the whole score is
  ``start_i . q' + end_j . q'' + b . q``: no per-span vector at all.

The results equal the direct computation up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn


def bernoulli_keep(like: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout mask shaped and typed like ``like``: 0 with probability ``p``, else 1 / (1 - p)."""
    return torch.empty_like(like).bernoulli_(1 - p).div_(1 - p)


def mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    # Indices 0 and 3 hold the weights, as in GLiNER checkpoints.
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out)
    )


def span_ends(x: torch.Tensor, max_width: int) -> torch.Tensor:
    """(B, W, F) per-word values -> (B, W, K, F) values at the end word i + k.

    Positions past the last word read zeros; those spans are invalid and masked
    by the decoder. Built from K shifted slices: cheap to differentiate and to export.
    """
    B, W, F = x.shape
    padded = torch.cat([x, x.new_zeros(B, max_width - 1, F)], dim=1)  # (B, W+K-1, F)
    return torch.stack([padded[:, k : k + W] for k in range(max_width)], dim=2)  # (B, W, K, F)


def is_tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class _WidthScores(torch.autograd.Function):
    """markerV0 logits without the label bias, ``relu(a_i + b_{i+k}) * keep_i . q_c``, one
    span width at a time, with its gradient.

    The same numbers as the all-widths tensor (B, W, K, 4D), without ever holding it: each
    width needs one (B, W, 4D) buffer, which stays in cache, and one batched matmul. For
    training, each width is recomputed from ``a``, ``b`` and ``keep`` when the gradient is
    needed (one add and one ReLU), instead of autograd keeping the big tensor, its ReLU mask
    and its dropout product for the backward pass. Same FLOPs for the matrix products.
    """

    @staticmethod
    def forward(ctx, a, b, q, keep, scale, max_width):  # noqa: ANN001 - autograd's signature
        B, W, H = a.shape
        padded = torch.cat([b, b.new_zeros(B, max_width - 1, H)], dim=1)  # (B, W+K-1, 4D)
        qt = q.transpose(1, 2)  # (B, 4D, C)
        out = a.new_empty(max_width, B, W, q.shape[1])
        buf = torch.empty_like(a)
        for k in range(max_width):
            _width(a, padded, keep, k, buf)
            torch.bmm(buf, qt, out=out[k])
        ctx.save_for_backward(a, padded, q, keep)
        ctx.scale, ctx.max_width = scale, max_width
        return out.permute(1, 2, 0, 3)  # (B, W, K, C)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        a, padded, q, keep = ctx.saved_tensors
        W = a.shape[1]
        need_a, need_b, need_q = ctx.needs_input_grad[:3]
        grad_a = torch.zeros_like(a) if need_a or need_b else None
        grad_padded = torch.zeros_like(padded) if need_b else None
        grad_q = torch.zeros_like(q) if need_q else None
        # where the span vector is positive, keep holds one value (1 / (1 - p)): scale the
        # incoming gradient by it once, and the ReLU's mask (h > 0) also applies the dropout's
        grad = grad * ctx.scale if keep is not None else grad
        h = torch.empty_like(a)
        for k in range(ctx.max_width):
            g = grad[:, :, k]  # (B, W, C)
            _width(a, padded, keep, k, h)
            if grad_q is not None:
                grad_q.baddbmm_(g.transpose(1, 2), h)  # (B, C, 4D)
            if grad_a is not None:
                gh = torch.ops.aten.threshold_backward(torch.bmm(g, q), h, 0.0)  # (B, W, 4D)
                grad_a += gh
                if grad_padded is not None:
                    grad_padded[:, k : k + W] += gh
        if grad_q is not None and keep is not None:
            grad_q.div_(ctx.scale)  # h already carried the dropout scale
        grad_b = grad_padded[:, :W] if grad_padded is not None else None
        return (grad_a if need_a else None), grad_b, grad_q, None, None, None


def _traced_width_scores(
    a: torch.Tensor, b: torch.Tensor, q: torch.Tensor, keep: torch.Tensor | None, max_width: int
) -> torch.Tensor:
    """:class:`_WidthScores`' forward as plain traceable operations, (B, W, K, C).

    The export unrolls the K widths: each is one (B, W, 4D) add, ReLU and product with the
    labels, and only the (B, W, C) scores are stacked. Building the all-widths tensor
    (B, W, K, 4D) instead (a ``Concat`` of K shifted copies, then the add) cost ONNX Runtime
    about 40% of the int8 graph's kernel time on 200-word texts.
    """
    W = a.shape[1]
    padded = torch.cat([b, b.new_zeros(b.shape[0], max_width - 1, b.shape[2])], dim=1)  # (B, W+K-1, 4D)
    qt = q.transpose(1, 2)  # (B, 4D, C)
    scores = []
    for k in range(max_width):
        h = (a + padded[:, k : k + W]).relu()  # (B, W, 4D)
        if keep is not None:
            h = h * keep
        scores.append(torch.bmm(h, qt))  # (B, W, C)
    return torch.stack(scores, dim=2)


def _width(
    a: torch.Tensor, padded: torch.Tensor, keep: torch.Tensor | None, k: int, out: torch.Tensor
) -> None:
    """``out = relu(a_i + b_{i+k}) * keep_i`` for every start word i."""
    torch.add(a, padded[:, k : k + a.shape[1]], out=out).relu_()
    if keep is not None:
        out.mul_(keep)


class MarkerV0(nn.Module):
    """GLiNER ``markerV0``: start and end MLPs (D->4D->D), then an MLP over their concatenation."""

    def __init__(self, hidden_size: int, max_width: int, dropout: float):
        super().__init__()
        D = hidden_size
        self.max_width = max_width
        self.project_start = mlp(D, 4 * D, D, dropout)
        self.project_end = mlp(D, 4 * D, D, dropout)
        self.out_project = mlp(2 * D, 4 * D, D, dropout)
        # Draws the span dropout mask in training; the trainer may put a cheaper one here
        # (anyner.train.dropout.use_fast_dropout). Not a parameter, not saved.
        self.keep_mask = bernoulli_keep
        # An anyner.prefilter.SpanPrefilter, or None (every span scored). Not a module: the
        # state dict stays GLiNER's.
        self.prefilter = None

    def hidden(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The span hidden vectors (B, W, K, 4D) before the label product, at inference, and
        (B, W, K) True for spans whose first and last words are words of the text (nonzero vectors)."""
        a, b = self._ends(words)
        return (a[:, :, None, :] + span_ends(b, self.max_width)).relu_(), self._valid(words)

    def _ends(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The start and end words' parts of the first layer of ``out_project``, (B, W, 4D) each."""
        first = self.out_project[0]
        # a constant, not words.shape[-1]: an export then holds the two halves as weights
        # (which int8 quantization reaches), not as slices computed from the input's shape
        D = first.in_features // 2
        start = self.project_start(words).relu()  # (B, W, D)
        end = self.project_end(words).relu()  # (B, W, D)
        return nn.functional.linear(start, first.weight[:, :D], first.bias), nn.functional.linear(
            end, first.weight[:, D:]
        )

    def _valid(self, words: torch.Tensor) -> torch.Tensor:
        present = (words != 0).any(-1, keepdim=True).to(words.dtype)  # (B, W, 1)
        return (present[:, :, None, 0] * span_ends(present, self.max_width)[..., 0]) > 0

    def forward(self, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """words (B, W, D), labels (B, C, D) projected label vectors -> logits (B, W, K, C)."""
        drop, last = self.out_project[2], self.out_project[3]
        a, b = self._ends(words)  # (B, W, 4D) each
        q = labels @ last.weight  # (B, C, 4D): the last Linear folded into the labels
        bias = labels @ last.bias  # (B, C)
        if self.prefilter is not None and not self.training and not is_tracing():
            from anyner.prefilter import filtered_scores

            h = (a[:, :, None, :] + span_ends(b, self.max_width)).relu_()  # (B, W, K, 4D)
            return filtered_scores(h, self._valid(words), q, bias, self.prefilter)
        keep = None
        if self.training and drop.p > 0:
            # Dropout on the span vectors, with one mask per start word shared by its K widths:
            # the same rate and expectation as GLiNER's per-element dropout for a K-th of the
            # random draws, which otherwise cost a quarter of a training step on CPU.
            keep = self.keep_mask(a, drop.p)  # (B, W, 4D): 0 or 1 / (1 - p)
        if is_tracing():  # export: the widths unrolled, as in _WidthScores
            return _traced_width_scores(a, b, q, keep, self.max_width) + bias[:, None, None, :]
        scale = 1.0 / (1 - drop.p) if keep is not None else 1.0
        return _WidthScores.apply(a, b, q, keep, scale, self.max_width) + bias[:, None, None, :]


class Marker(nn.Module):
    """GLiNER ``marker`` (v0): start and end MLPs (D->2D->D), then one Linear(2D, D) after a ReLU."""

    def __init__(self, hidden_size: int, max_width: int, dropout: float):
        super().__init__()
        D = hidden_size
        self.max_width = max_width
        self.project_start = mlp(D, 2 * D, D, dropout)
        self.project_end = mlp(D, 2 * D, D, dropout)
        self.out_project = nn.Linear(2 * D, D)

    def forward(self, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """words (B, W, D), labels (B, C, D) -> logits (B, W, K, C)."""
        D = self.out_project.in_features // 2  # a constant in an export (see MarkerV0._ends)
        w = self.out_project.weight  # (D, 2D)
        start = self.project_start(words).relu() @ w[:, :D].T  # (B, W, D)
        end = self.project_end(words).relu() @ w[:, D:].T  # (B, W, D)
        s = start @ labels.transpose(1, 2)  # (B, W, C)
        e = end @ labels.transpose(1, 2)  # (B, W, C)
        bias = labels @ self.out_project.bias  # (B, C)
        return s[:, :, None, :] + span_ends(e, self.max_width) + bias[:, None, None, :]


SPAN_LAYERS: dict[str, type[nn.Module]] = {"markerV0": MarkerV0, "marker": Marker}
