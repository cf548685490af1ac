"""The transformer LM: KV-cache equivalence, masks, null conditions, positional variants, config errors."""

import pytest
import torch

from tokenlm.common.attention import check_attention_backend, key_padding_bias
from tokenlm.lm.model import LMConfig, LMModel


def make_lm(**overrides) -> LMModel:
    args = dict(num_codebooks=3, cardinality=32, dim=32, num_layers=2, num_heads=4, ffn_dim=64)
    torch.manual_seed(0)
    return LMModel(LMConfig(**{**args, **overrides})).eval()


def condition(batch=2, length=5, dim=32):
    embeds = torch.randn(batch, length, dim)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 3:] = False
    return embeds, mask


@pytest.mark.parametrize("positional", ["sin", "rope", "sin_rope", "none"])
def test_cached_decoding_equals_full_forward(positional):
    lm = make_lm(positional=positional)
    seq = torch.randint(0, 33, (2, 3, 11))
    ctx = lm.cross_context(*condition())
    full = lm(seq, ctx)
    assert full.shape == (2, 3, 11, 32)
    cache = lm.new_cache(2, 11, torch.device("cpu"), torch.float32)
    chunks = [lm(seq[..., :4], ctx, cache), lm(seq[..., 4:7], ctx, cache)]  # prefill, then a cached chunk
    chunks += [lm(seq[..., t : t + 1], ctx, cache) for t in range(7, 11)]  # then step by step
    torch.testing.assert_close(torch.cat(chunks, dim=2), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 11


@pytest.mark.parametrize("positional", ["sin_rope", "rope"])
def test_decode_step_with_head_bias_equals_full_forward(positional):
    lm = make_lm(positional=positional, bias_heads=True)
    with torch.no_grad():
        lm.head_bias.normal_()  # zero-initialised; make it matter
    seq = torch.randint(0, 33, (2, 3, 9))
    ctx = lm.cross_context(*condition())
    with torch.no_grad():
        full = lm(seq, ctx)
        cache = lm.new_cache(2, 9, torch.device("cpu"), torch.float32)
        steps = [lm(seq[..., :1], ctx, cache)[:, :, 0]] + [lm.decode_step(seq[..., t], ctx, cache) for t in range(1, 9)]
    torch.testing.assert_close(torch.stack(steps, dim=2), full, atol=1e-5, rtol=1e-5)
    without_bias = full - lm.head_bias[None, :, None, :]
    lm.head_bias = None
    torch.testing.assert_close(lm(seq, ctx).detach(), without_bias, atol=1e-5, rtol=1e-5)


def test_causality():
    lm = make_lm()
    ctx = lm.cross_context(*condition())
    seq = torch.randint(0, 33, (2, 3, 8))
    changed = seq.clone()
    changed[..., 5:] = (changed[..., 5:] + 1) % 33
    a, b = lm(seq, ctx), lm(changed, ctx)
    torch.testing.assert_close(a[..., :5, :], b[..., :5, :])
    assert not torch.allclose(a[..., 5:, :], b[..., 5:, :])


def test_key_padding_mask_is_honoured():
    lm = make_lm()
    embeds, mask = condition()
    seq = torch.randint(0, 33, (2, 3, 6))
    base = lm(seq, lm.cross_context(embeds, mask))
    noisy = embeds.clone()
    noisy[1, 3:] += 100.0  # masked positions of row 1 change: its output must not
    other = lm(seq, lm.cross_context(noisy, mask))
    torch.testing.assert_close(base[1], other[1])
    noisy[1, 0] += 1.0  # an unmasked position changes: its output must
    assert not torch.allclose(base[1], lm(seq, lm.cross_context(noisy, mask))[1])


def test_null_condition_gives_finite_logits_and_ignores_padding_length():
    lm = make_lm()
    seq = torch.randint(0, 33, (1, 3, 6))
    null_short = lm(seq, lm.cross_context(torch.zeros(1, 2, 32), torch.zeros(1, 2, dtype=torch.bool)))
    null_long = lm(seq, lm.cross_context(torch.zeros(1, 9, 32), torch.zeros(1, 9, dtype=torch.bool)))
    assert torch.isfinite(null_short).all()
    torch.testing.assert_close(null_short, null_long)


def test_key_padding_bias():
    mask = torch.tensor([[True, False], [False, False]])
    assert key_padding_bias(mask)[:, 0, 0].tolist() == [[True, False], [True, True]]
    assert key_padding_bias(torch.ones(2, 3, dtype=torch.bool)) is None


def test_hidden_states_and_gradients():
    lm = make_lm()
    lm.train()
    seq = torch.randint(0, 33, (2, 3, 6))
    logits, hidden = lm(seq, lm.cross_context(*condition()), return_hidden=True)
    assert hidden.shape == (2, 6, 32)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in lm.parameters())


def test_config_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        LMConfig(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="positional 'alibi' unknown"):
        LMConfig(positional="alibi")
    with pytest.raises(ValueError, match=r"unknown LM config keys \['depth'\]"):
        LMConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="unknown attention backend 'flash3'"):
        LMConfig(attention_backend="flash3")


def test_xformers_backend_fails_clearly_on_cpu():
    with pytest.raises(RuntimeError, match="xformers"):
        check_attention_backend("xformers", "cpu")


def test_cache_overflow_is_an_error():
    lm = make_lm()
    cache = lm.new_cache(2, 4, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="KV cache holds 4 steps"):
        lm(torch.zeros(2, 3, 5, dtype=torch.long), lm.cross_context(*condition()), cache)
