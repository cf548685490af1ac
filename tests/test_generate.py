"""Generation: the cached loop against a naive full-recompute reference, guidance, prompts, long audio."""

import pytest
import torch

from tokenlm.lm.generate import concat_conditions_batch, generate_codes
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams, sample_next

PROMPTS = [{"description": "a dog barks twice"}, {"description": "soft jazz piano"}]


def reference_generate(lm, pattern, condition, null, params, generator=None, prompt=None):
    """Re-runs the whole sequence at every step (no KV cache), the slow obvious way."""
    batch, K, special = condition.embeds.shape[0], lm.config.num_codebooks, lm.config.special_token
    known = torch.full((batch, K, pattern.num_frames), -1)
    if prompt is not None:
        known[..., : prompt.shape[-1]] = prompt
    sequence = pattern.build(known, special)
    both = concat_conditions_batch(condition, null)
    ctx = lm.cross_context(both.embeds, both.mask)
    for step in range(pattern.num_steps - 1):
        if not (sequence[:, :, step + 1] == -1).any():
            continue
        inputs = sequence[:, :, : step + 1].clamp(min=0)
        logits = lm(torch.cat([inputs, inputs]), ctx)[:, :, -1]
        cond, uncond = logits.split(batch)
        # guidance written out (not apply_cfg); sample_next's distributions are checked in test_sampling.py
        tokens = sample_next(uncond + params.cfg_coef * (cond - uncond), params, generator)
        target = sequence[:, :, step + 1]
        sequence[:, :, step + 1] = torch.where(target == -1, tokens, target)
    return pattern.revert(sequence)


def conditions(backend, prompts=PROMPTS):
    """The cross-attention conditions (the tiny backend routes its one text conditioner to cross)."""
    return backend.conditioning.encode(prompts).cross, backend.conditioning.encode(prompts, null=True).cross


@pytest.mark.parametrize("kind", ["delay", "parallel", "flattened", "coarse_first"])
def test_greedy_generation_matches_reference(spm_model_path, kind):
    from conftest import make_tiny_backend

    backend = make_tiny_backend(spm_model_path, pattern=kind)
    cond, null = conditions(backend)
    pattern = build_pattern(kind, 4, 9)
    params = SamplingParams(temperature=0, cfg_coef=3.0)
    ours = generate_codes(backend.lm, pattern, cond, null, params)
    expected = reference_generate(backend.lm, pattern, cond, null, params)
    assert ours.shape == (2, 4, 9)
    assert torch.equal(ours, expected)
    assert len(set(ours.flatten().tolist())) > 4  # not a degenerate constant output


def test_seeded_sampling_matches_reference_and_is_reproducible(tiny_backend):
    cond, null = conditions(tiny_backend)
    pattern = build_pattern("delay", 4, 8)
    params = SamplingParams(top_k=20, top_p=0.9, temperature=1.2, cfg_coef=2.0)
    run = lambda: generate_codes(  # noqa: E731
        tiny_backend.lm, pattern, cond, null, params, generator=torch.Generator().manual_seed(7)
    )
    first, second = run(), run()
    assert torch.equal(first, second)
    expected = reference_generate(tiny_backend.lm, pattern, cond, null, params, torch.Generator().manual_seed(7))
    assert torch.equal(first, expected)
    other = generate_codes(tiny_backend.lm, pattern, cond, null, params, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first, other)


def test_two_step_cfg_equals_batched_cfg(tiny_backend):
    cond, null = conditions(tiny_backend)
    pattern = build_pattern("delay", 4, 10)
    batched = generate_codes(tiny_backend.lm, pattern, cond, null, SamplingParams(temperature=0))
    two_step = generate_codes(tiny_backend.lm, pattern, cond, null, SamplingParams(temperature=0, two_step_cfg=True))
    assert torch.equal(batched, two_step)


def test_guidance_changes_output_and_cfg_one_needs_no_null(tiny_backend):
    cond, null = conditions(tiny_backend)
    pattern = build_pattern("delay", 4, 10)
    plain = generate_codes(tiny_backend.lm, pattern, cond, None, SamplingParams(temperature=0, cfg_coef=1.0))
    guided = generate_codes(tiny_backend.lm, pattern, cond, null, SamplingParams(temperature=0, cfg_coef=5.0))
    assert not torch.equal(plain, guided)


def test_prompt_continuation_keeps_prompt_and_matches_reference(tiny_backend):
    cond, null = conditions(tiny_backend)
    pattern = build_pattern("delay", 4, 12)
    prompt = torch.randint(0, 128, (2, 4, 5))
    params = SamplingParams(temperature=0)
    ours = generate_codes(tiny_backend.lm, pattern, cond, null, params, prompt=prompt)
    assert torch.equal(ours[..., :5], prompt)
    assert torch.equal(ours, reference_generate(tiny_backend.lm, pattern, cond, null, params, prompt=prompt))


def test_progress_callback_counts_every_step(tiny_backend):
    cond, null = conditions(tiny_backend)
    calls = []
    generate_codes(tiny_backend.lm, build_pattern("delay", 4, 6), cond, null, SamplingParams(),
                   callback=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 9) for i in range(1, 10)]


def test_sampling_filters():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    top2 = sample_next(logits, SamplingParams(top_k=2), gen)
    assert set(top2.tolist()) == {0, 1}
    # softmax of [4, 3, 2, ...]: p0 = 0.636, p0 + p1 = 0.87, so top_p=0.8 keeps exactly two tokens
    top_p = sample_next(logits, SamplingParams(top_k=0, top_p=0.8), gen)
    assert set(top_p.tolist()) == {0, 1}
    assert abs((top_p == 0).float().mean().item() - 0.636 / 0.87) < 0.04
    assert sample_next(logits, SamplingParams(temperature=0), gen).eq(0).all()
    everything = sample_next(logits, SamplingParams(top_k=0, temperature=1.0), gen)
    assert set(everything.tolist()) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(top_k=-1), "top_k must be an int >= 0"),
        (dict(top_k=2.5), "top_k must be an int >= 0"),
        (dict(top_p=1.5), "top_p must be a number in"),
        (dict(temperature=-0.1), "temperature must be a number >= 0"),
        (dict(cfg_coef=-1), "cfg_coef must be a number >= 0"),
        (dict(cfg_coef=float("nan")), "cfg_coef must be a number >= 0"),
    ],
)
def test_bad_sampling_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_model_sampling_defaults_are_saved_and_yield_to_the_caller(spm_model_path, tmp_path):
    from conftest import make_tiny_backend

    from tokenlm.api import TextToAudio
    from tokenlm.lm.backend import LMBackend

    backend = make_tiny_backend(spm_model_path)
    backend.sampling_defaults = backend.check_sampling_defaults({"top_k": 3, "temperature": 0.5})
    assert backend.make_sampling({}) == SamplingParams(top_k=3, temperature=0.5)
    assert backend.make_sampling({"top_k": 7}) == SamplingParams(top_k=7, temperature=0.5)
    backend.save_pretrained(tmp_path / "model")
    loaded = LMBackend.from_pretrained(tmp_path / "model")
    assert loaded.sampling_defaults == {"top_k": 3, "temperature": 0.5}
    model = TextToAudio.from_pretrained(tmp_path / "model")
    by_default = model.generate(["a tone"], 0.5, seed=1).wav
    explicit = model.generate(["a tone"], 0.5, seed=1, top_k=3, temperature=0.5).wav
    library = model.generate(["a tone"], 0.5, seed=1, top_k=250, temperature=1.0).wav
    assert torch.equal(by_default, explicit) and not torch.equal(by_default, library)
    with pytest.raises(ValueError, match=r"unknown sampling default\(s\) \['steps'\]; allowed"):
        backend.check_sampling_defaults({"steps": 10})
    with pytest.raises(ValueError, match="top_k"):
        backend.check_sampling_defaults({"top_k": -1})
