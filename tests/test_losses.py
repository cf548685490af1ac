"""LM objectives: cross-entropy per codebook and the representation-regularization loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from tokenlm.lm.losses import codebook_cross_entropy, pool_sequence, representation_regularization


def loop_rr(text, text_mask, audio, audio_mask, pooling="max"):
    """A direct, loop-by-loop transcription of the paper's formula."""
    def pool(x, m):
        rows = x[m]
        return rows.max(dim=0).values if pooling == "max" else rows.mean(dim=0)

    B = text.shape[0]
    T = [pool(text[b], text_mask[b]) for b in range(B)]
    A = [pool(audio[b], audio_mask[b]) for b in range(B)]
    total = 0.0
    for b in range(B):
        for c in range(B):
            if b != c:
                t = F.cosine_similarity(T[b], T[c], dim=0)
                a = F.cosine_similarity(A[b], A[c], dim=0)
                total = total + (t - a) ** 2
    return total / (B * (B - 1))


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_rr_matches_direct_loop(pooling):
    torch.manual_seed(0)
    text, audio = torch.randn(5, 7, 16), torch.randn(5, 11, 24)
    text_mask = torch.rand(5, 7) > 0.3
    audio_mask = torch.rand(5, 11) > 0.2
    text_mask[:, 0] = audio_mask[:, 0] = True
    ours = representation_regularization(text, text_mask, audio, audio_mask, pooling)
    torch.testing.assert_close(ours, loop_rr(text, text_mask, audio, audio_mask, pooling), atol=1e-6, rtol=1e-5)
    assert ours.item() > 0


def test_rr_is_zero_when_structures_match_and_for_batch_of_one():
    torch.manual_seed(0)
    text = torch.randn(4, 3, 8)
    mask = torch.ones(4, 3, dtype=torch.bool)
    # audio = a positive rescaling of the text: identical cosine structure
    assert representation_regularization(text, mask, 2.5 * text, mask).item() < 1e-10
    assert representation_regularization(text[:1], mask[:1], text[:1], mask[:1]).item() == 0.0


def test_rr_gradient_reaches_audio_only():
    torch.manual_seed(0)
    text = torch.randn(4, 3, 8, requires_grad=True)
    audio = torch.randn(4, 6, 8, requires_grad=True)
    loss = representation_regularization(text, torch.ones(4, 3, dtype=torch.bool), audio,
                                         torch.ones(4, 6, dtype=torch.bool))
    loss.backward()
    assert text.grad is None
    assert audio.grad is not None and audio.grad.abs().sum() > 0
    # max pooling: only the arg-max time steps receive gradient
    assert (audio.grad != 0).sum() <= 4 * 8


def test_rr_decreases_under_gradient_descent():
    torch.manual_seed(0)
    text = torch.randn(6, 4, 8)
    audio = torch.randn(6, 5, 8, requires_grad=True)
    masks = torch.ones(6, 4, dtype=torch.bool), torch.ones(6, 5, dtype=torch.bool)
    opt = torch.optim.Adam([audio], lr=0.05)
    first = None
    for _ in range(100):
        loss = representation_regularization(text, masks[0], audio, masks[1])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * first


def test_pool_handles_empty_rows_and_bad_mode():
    x = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    pooled = pool_sequence(x, mask, "max")
    torch.testing.assert_close(pooled[0], torch.maximum(x[0, 0], x[0, 2]))
    assert torch.equal(pooled[1], torch.zeros(4))
    with pytest.raises(ValueError, match="unknown pooling 'attention'"):
        pool_sequence(x, mask, "attention")


def test_codebook_cross_entropy_values():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 7)
    targets = torch.randint(0, 7, (2, 3, 5))
    valid = torch.rand(2, 3, 5) > 0.3
    loss, per_k = codebook_cross_entropy(logits, targets, valid)
    for k in range(3):
        sel = valid[:, k]
        expected = F.cross_entropy(logits[:, k][sel], targets[:, k][sel])
        torch.testing.assert_close(per_k[k], expected)
    torch.testing.assert_close(loss, per_k.mean())
    all_valid = torch.ones(1, 2, 3, dtype=torch.bool)
    uniform, _ = codebook_cross_entropy(torch.zeros(1, 2, 3, 7), targets[:1, :2, :3], all_valid)
    assert math.isclose(uniform.item(), math.log(7), rel_tol=1e-6)
