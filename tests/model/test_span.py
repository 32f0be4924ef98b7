"""The markerV0 head's training path: its hand-written gradient against autograd's.

``_WidthScores`` computes ``relu(a_i + b_{i+k}) * keep_i . q_c`` one width at a time and
recomputes each width for the backward pass instead of storing the (B, W, K, 4D) tensor.
These tests hold it to the direct formula: values and gradients, with and without the
dropout mask, and through the whole head against GLiNER's per-span MLP.
"""

from __future__ import annotations

import pytest
import torch

from anyner.model.span import MarkerV0, _traced_width_scores, _WidthScores, span_ends


def direct(a, b, q, keep, K):
    h = (a[:, :, None, :] + span_ends(b, K)).relu()
    if keep is not None:
        h = h * keep[:, :, None, :]
    return torch.einsum("bwkh,bch->bwkc", h, q)


@pytest.mark.parametrize("p", [0.0, 0.4])
def test_width_scores_gradient_is_autograds(p):
    g = torch.Generator().manual_seed(3)
    B, W, H, C, K = 2, 7, 5, 3, 4
    a, b, q = (torch.randn(*s, dtype=torch.double, generator=g, requires_grad=True)
               for s in ((B, W, H), (B, W, H), (B, C, H)))  # fmt: skip
    keep = None
    if p:
        keep = (torch.rand(B, W, H, dtype=torch.double, generator=g) > p).double() / (1 - p)
        assert 0 < int((keep == 0).sum()) < keep.numel()  # the mask really drops something
    scale = 1 / (1 - p)
    assert torch.autograd.gradcheck(lambda a, b, q: _WidthScores.apply(a, b, q, keep, scale, K), (a, b, q))
    # and the same values and gradients as the direct (B, W, K, 4D) formula
    up = torch.randn(B, W, K, C, dtype=torch.double, generator=g)
    ours = _WidthScores.apply(a, b, q, keep, scale, K)
    grads = torch.autograd.grad(ours, (a, b, q), up)
    theirs = direct(a, b, q, keep, K)
    expected = torch.autograd.grad(theirs, (a, b, q), up)
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(grads, expected, strict=True):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("W", [1, 3, 9])  # shorter than, and longer than, the widest span
@pytest.mark.parametrize("p", [0.0, 0.4])
def test_the_exported_width_loop_equals_the_direct_formula(W, p):
    """The export's unrolled widths (``_traced_width_scores``) give the direct formula's values,
    also for texts shorter than the widest span."""
    g = torch.Generator().manual_seed(W)
    B, H, C, K = 2, 5, 3, 4
    a, b, q = (torch.randn(*s, dtype=torch.double, generator=g) for s in ((B, W, H), (B, W, H), (B, C, H)))
    keep = (torch.rand(B, W, H, dtype=torch.double, generator=g) > p).double() / (1 - p) if p else None
    torch.testing.assert_close(_traced_width_scores(a, b, q, keep, K), direct(a, b, q, keep, K))


def test_marker_v0_training_gradients_match_the_per_span_mlp():
    """With gradients on (dropout off), the head's logits and every weight's gradient equal
    GLiNER's formula: an MLP over the concatenated start and end vectors of every span."""
    torch.manual_seed(0)
    B, W, D, C, K = 2, 9, 8, 3, 4
    head = MarkerV0(D, K, dropout=0.0).double().eval()
    words = torch.randn(B, W, D, dtype=torch.double)
    labels = torch.randn(B, C, D, dtype=torch.double)
    up = torch.randn(B, W, K, C, dtype=torch.double)

    ours = head(words, labels)
    grads = torch.autograd.grad(ours, list(head.parameters()), up)

    start = head.project_start(words).relu()
    end = span_ends(head.project_end(words).relu(), K)
    spans = torch.cat([start[:, :, None, :].expand(-1, -1, K, -1), end], dim=-1)  # (B, W, K, 2D)
    theirs = torch.einsum("bwkd,bcd->bwkc", head.out_project(spans), labels)
    expected = torch.autograd.grad(theirs, list(head.parameters()), up)
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(grads, expected, strict=True):
        torch.testing.assert_close(x, y)
