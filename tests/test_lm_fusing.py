"""Condition routes in the LM: prepended condition tokens and summed conditions, with the KV cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conditioners import Condition
from conditioners.fuser import FusedCondition
from conditioners.lut import LUTConditioner
from conditioners.number import NumberConditioner
from conditioners.text.sentencepiece import SentencePieceConditioner
from conditioners.timing import TimingConditioner
from tokenlm.lm.generate import generate_codes
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams, apply_cfg, sample_next

PROMPTS = [
    {"description": "a dog barks twice", "seconds_total": 4, "genre": "jazz", "instrument": ["piano", "drums"],
     "bpm": 90},
    {"description": "soft rain", "seconds_total": 12.5, "genre": "polka", "instrument": "bass"},
]


def fused_backend(spm_model_path: Path, positional: str = "sin", cross: bool = True, seed: int = 0):
    """Tiny backend: text (cross, or prepend without cross-attention), timing + instruments prepended, genre and
    bpm summed."""
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config
    from tokenlm.lm.backend import LMBackend

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        codec = EncodecCodec.from_config(tiny_encodec_config(), seed=seed)
        text = SentencePieceConditioner("description", 32, spm_model_path, dim=32, num_layers=1, num_heads=2,
                                        max_length=48, dropout=0.0)
        timing = TimingConditioner("seconds_total", 32, max_seconds=30)
        genre = LUTConditioner("genre", 32, values=["jazz", "rock"])
        instrument = LUTConditioner("instrument", 32, values=["piano", "drums", "bass"], max_items=3)
        bpm = NumberConditioner("bpm", 32, min_value=40, max_value=200, fourier_dim=16)
        lm = LMModel(LMConfig(num_codebooks=4, cardinality=128, dim=32, num_layers=2, num_heads=4, ffn_dim=64,
                              positional=positional, cross_attention=cross))
        lm.heads.data.mul_(40)  # sharpen random heads so tokens depend visibly on the inputs
    routes = {"description": "cross" if cross else "prepend", "seconds_total": "prepend", "instrument": "prepend",
              "genre": "sum", "bpm": "sum"}
    backend = LMBackend(lm, codec, [text, timing, genre, instrument, bpm], routes=routes, max_duration=1.0)
    return backend.eval()


def naive_generate(lm, pattern, condition, null, params, generator=None):
    """Re-runs the whole sequence at every step, no KV cache (prefix re-prepended every time)."""
    batch, special = condition.batch_size, lm.config.special_token
    sequence = pattern.build(torch.full((batch, lm.config.num_codebooks, pattern.num_frames), -1), special)
    context = lm.condition_context(condition.cat_batch(null))
    for step in range(pattern.num_steps - 1):
        if not (sequence[:, :, step + 1] == -1).any():
            continue
        inputs = sequence[:, :, : step + 1].clamp(min=0)
        cond, uncond = lm(torch.cat([inputs, inputs]), context)[:, :, -1].split(batch)
        tokens = sample_next(apply_cfg(cond, uncond, params.cfg_coef), params, generator)
        target = sequence[:, :, step + 1]
        sequence[:, :, step + 1] = torch.where(target == -1, tokens, target)
    return pattern.revert(sequence)


@pytest.mark.parametrize(("positional", "cross"), [("sin", True), ("rope", True), ("sin", False)])
def test_cached_generation_equals_full_recompute_with_prepend_and_sum(spm_model_path, positional, cross):
    backend = fused_backend(spm_model_path, positional, cross)
    cond, null = backend.conditioning.encode(PROMPTS), backend.conditioning.encode(PROMPTS, null=True)
    assert cond.prepend is not None and cond.sum is not None and (cond.cross is not None) == cross
    assert cond.prepend.mask.sum(dim=1).tolist() != [cond.prepend.length] * 2  # padding in the prefix is exercised
    pattern = build_pattern("delay", 4, 7)
    greedy = SamplingParams(temperature=0, cfg_coef=3.0)
    ours = generate_codes(backend.lm, pattern, cond, null, greedy)
    assert torch.equal(ours, naive_generate(backend.lm, pattern, cond, null, greedy))
    assert torch.equal(ours, generate_codes(backend.lm, pattern, cond, null, SamplingParams(temperature=0, cfg_coef=3.0,
                                                                                          two_step_cfg=True)))
    assert len(set(ours.flatten().tolist())) > 4
    sampled = SamplingParams(top_k=20, temperature=1.0, cfg_coef=2.0)
    ours = generate_codes(backend.lm, pattern, cond, null, sampled, generator=torch.Generator().manual_seed(3))
    expected = naive_generate(backend.lm, pattern, cond, null, sampled, torch.Generator().manual_seed(3))
    assert torch.equal(ours, expected)


def test_conditions_change_the_output_and_null_prefix_is_invisible(spm_model_path):
    backend = fused_backend(spm_model_path, cross=False)
    lm, conditioning = backend.lm, backend.conditioning
    seq = torch.randint(0, 128, (2, 4, 6))
    base = lm(seq, lm.condition_context(conditioning.encode(PROMPTS)))
    for key, value in (("seconds_total", 20), ("genre", "rock"), ("instrument", "piano"), ("bpm", 150)):
        changed = [dict(PROMPTS[0], **{key: value}), PROMPTS[1]]
        logits = lm(seq, lm.condition_context(conditioning.encode(changed)))
        assert not torch.allclose(logits[0], base[0]), key  # prepended and summed conditions matter
        torch.testing.assert_close(logits[1], base[1])  # and only for their own sample
    # a fully null prefix and a zero sum are exactly "no condition"
    null = conditioning.encode(PROMPTS, null=True)
    assert not null.prepend.mask.any() and torch.equal(null.sum.embeds, torch.zeros_like(null.sum.embeds))
    torch.testing.assert_close(lm(seq, lm.condition_context(null)), lm(seq, None))


@pytest.mark.parametrize("positional", ["sin", "rope"])
def test_prefix_padding_and_masked_tokens_do_not_matter(positional):
    torch.manual_seed(0)
    lm = LMModel(LMConfig(num_codebooks=2, cardinality=16, dim=32, num_layers=2, num_heads=4, ffn_dim=64,
                          positional=positional, cross_attention=False)).eval()
    seq = torch.randint(0, 17, (1, 2, 5))
    tokens = torch.randn(1, 3, 32)
    plain = lm(seq, lm.condition_context(FusedCondition(prepend=Condition(tokens, torch.ones(1, 3, dtype=torch.bool)))))
    # the same three tokens with masked garbage before, between and after them
    noise = torch.randn(1, 4, 32)
    padded = torch.cat([noise[:, :1], tokens[:, :2], noise[:, 1:3], tokens[:, 2:], noise[:, 3:]], dim=1)  # [1, 7, 32]
    mask = torch.tensor([[False, True, True, False, False, True, False]])
    torch.testing.assert_close(lm(seq, lm.condition_context(FusedCondition(prepend=Condition(padded, mask)))), plain,
                               atol=1e-5, rtol=1e-5)
    cache = lm.new_cache(1, 5 + 7, torch.device("cpu"), torch.float32)
    context = lm.condition_context(FusedCondition(prepend=Condition(padded, mask)))
    steps = [lm(seq[..., :2], context, cache)] + [lm(seq[..., t : t + 1], context, cache) for t in range(2, 5)]
    torch.testing.assert_close(torch.cat(steps, dim=2), plain, atol=1e-5, rtol=1e-5)
    assert cache.length == 12 and cache.prefix == 7


def test_routes_are_saved_and_loaded(spm_model_path, tmp_path):
    from tokenlm.lm.backend import LMBackend

    backend = fused_backend(spm_model_path)
    folder = backend.save_pretrained(tmp_path / "ckpt")
    entries = json.loads((folder / "config.json").read_text())["conditioners"]
    assert {e["attribute"]: e["fuse"] for e in entries} == backend.conditioning.routes
    assert {e["attribute"]: e["kind"] for e in entries} == {"description": "sentencepiece", "seconds_total": "timing",
                                                             "genre": "lut", "instrument": "lut", "bpm": "number"}
    loaded = LMBackend.from_pretrained(folder)
    assert loaded.conditioning.routes == backend.conditioning.routes
    params = SamplingParams(top_k=10, cfg_coef=2.5)
    assert torch.equal(loaded.generate_tokens(PROMPTS, 0.3, params, seed=1),
                       backend.generate_tokens(PROMPTS, 0.3, params, seed=1))


def test_route_and_lm_mismatches_are_clear_errors(spm_model_path):
    from tokenlm.lm.backend import LMBackend

    backend = fused_backend(spm_model_path, cross=True)
    conditioners = list(backend.conditioning.conditioners.values())
    with pytest.raises(ValueError, match="no conditioner is routed to 'cross'.*cross_attention=False"):
        LMBackend(backend.lm, backend.codec, conditioners, routes={name: "prepend" for name in backend.attributes})
    no_cross = fused_backend(spm_model_path, cross=False)
    with pytest.raises(ValueError, match=r"\['genre', 'bpm'\] are routed to 'cross' but the LM has no cross-attention"):
        LMBackend(no_cross.lm, no_cross.codec, conditioners,
                  routes={"description": "prepend", "seconds_total": "sum", "instrument": "sum"})
    with pytest.raises(ValueError, match="has no cross-attention .* got a cross condition"):
        no_cross.lm.condition_context(backend.conditioning.encode(PROMPTS))
    with pytest.raises(ValueError, match=r"'seconds_total' got 31 s, outside the configured range \[0, 30\] s"):
        backend.generate_tokens([dict(PROMPTS[0], seconds_total=31)], 0.2, SamplingParams())
