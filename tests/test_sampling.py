"""The distributions next-token sampling draws from, against closed-form probabilities (chi-square, fixed seed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from tokenlm.lm.sampling import SamplingParams, apply_cfg, sample_next

#: logits of 6 tokens, out of rank order so that a mix-up between ranks and token ids shows
LOGITS = np.array([0.7, -0.5, 2.0, 0.0, 1.2, -1.5])
DRAWS = 30000


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _draw(logits: np.ndarray, params: SamplingParams, seed: int = 0) -> np.ndarray:
    """How often each token is drawn in ``DRAWS`` independent rows."""
    rows = torch.tensor(logits, dtype=torch.float32).repeat(DRAWS, 1)
    tokens = sample_next(rows, params, torch.Generator().manual_seed(seed))
    return np.bincount(tokens.numpy(), minlength=len(logits))


def _assert_matches(counts: np.ndarray, probs: np.ndarray) -> None:
    """Zero counts where the probability is zero; elsewhere a chi-square goodness of fit at the 0.1% level."""
    support = probs > 0
    assert counts[~support].sum() == 0, f"drew tokens outside the support: {counts}"
    result = chisquare(counts[support], DRAWS * probs[support])
    assert result.pvalue > 1e-3, f"counts {counts.tolist()} vs expected {np.round(DRAWS * probs).tolist()}"


def _top(probs: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = np.where(keep, probs, 0.0)
    return out / out.sum()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_draws_from_the_tempered_softmax(temperature):
    _assert_matches(_draw(LOGITS, SamplingParams(top_k=0, temperature=temperature)), _softmax(LOGITS / temperature))


def test_temperatures_are_told_apart():
    # the test above has the power to see a wrong temperature: T = 0.5 counts do not fit the T = 1 distribution
    counts = _draw(LOGITS, SamplingParams(top_k=0, temperature=0.5))
    assert chisquare(counts, DRAWS * _softmax(LOGITS)).pvalue < 1e-12


def test_top_k_renormalises_over_the_k_most_likely():
    # the three largest logits are those of tokens 2 (2.0), 4 (1.2) and 0 (0.7)
    keep = np.array([True, False, True, False, True, False])
    _assert_matches(_draw(LOGITS, SamplingParams(top_k=3)), _top(_softmax(LOGITS), keep))
    tempered = _draw(LOGITS, SamplingParams(top_k=3, temperature=1.7), seed=1)
    _assert_matches(tempered, _top(_softmax(LOGITS / 1.7), keep))


def test_top_k_then_top_p_with_temperature():
    # temperature 0.7, then the 4 best (tokens 2, 4, 0, 3), then the smallest prefix reaching p = 0.9:
    # tempered top-4 probabilities 0.653, 0.208, 0.102, 0.037 -> cumulative before each 0, 0.653, 0.861, 0.963,
    # so tokens 2, 4 and 0 stay
    tempered = _softmax(LOGITS / 0.7)
    top4 = _top(tempered, np.array([True, False, True, True, True, False]))
    np.testing.assert_allclose(np.sort(top4)[::-1][:4], [0.6526, 0.2082, 0.1019, 0.0374], atol=2e-4)
    keep = np.array([True, False, True, False, True, False])
    _assert_matches(_draw(LOGITS, SamplingParams(top_k=4, top_p=0.9, temperature=0.7)), _top(tempered, keep))
    # top-p alone over all 6 tokens at temperature 1: 0.508, 0.228, 0.138, 0.069, 0.042, ... -> cumulative before
    # the 4th is 0.874 < 0.9 and before the 5th 0.943, so four tokens stay
    probs = _softmax(LOGITS)
    keep = np.array([True, False, True, True, True, False])
    _assert_matches(_draw(LOGITS, SamplingParams(top_k=0, top_p=0.9), seed=2), _top(probs, keep))


def test_guided_logits_draw_from_the_guidance_formula():
    cond = LOGITS
    uncond = np.array([0.2, 0.4, 0.9, 0.0, 1.0, -1.0])
    guided = apply_cfg(torch.tensor(cond), torch.tensor(uncond), 3.0).numpy()
    np.testing.assert_allclose(guided, uncond + 3.0 * (cond - uncond), rtol=1e-12)
    np.testing.assert_allclose(guided[:3], [1.7, -2.3, 4.2], atol=1e-12)
    _assert_matches(_draw(guided, SamplingParams(top_k=0, cfg_coef=3.0)), _softmax(uncond + 3.0 * (cond - uncond)))


def test_greedy_is_the_argmax_and_batched_rows_sample_independently():
    rows = torch.tensor(np.stack([LOGITS, LOGITS[::-1]]), dtype=torch.float32)
    assert sample_next(rows, SamplingParams(temperature=0)).tolist() == [2, 3]
    assert sample_next(rows, SamplingParams(top_k=1, temperature=5.0)).tolist() == [2, 3]
    # [2, N, card] rows keep their shape, and each row follows its own logits
    many = rows[:, None].expand(2, DRAWS // 2, 6)
    tokens = sample_next(many, SamplingParams(top_k=0), torch.Generator().manual_seed(3))
    assert tokens.shape == (2, DRAWS // 2)
    for row, probs in ((0, _softmax(LOGITS)), (1, _softmax(LOGITS[::-1]))):
        counts = np.bincount(tokens[row].numpy(), minlength=6)
        assert chisquare(counts, DRAWS // 2 * probs).pvalue > 1e-3
