"""Codebook patterns: build/revert round trips, layouts, and parity with transformers' MusicGen delay mask."""

import pytest
import torch
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

from tokenlm.lm.patterns import PATTERNS, build_pattern

SPECIAL = 2048


@pytest.mark.parametrize("kind", PATTERNS)
@pytest.mark.parametrize("num_codebooks,num_frames", [(1, 5), (4, 7), (8, 3)])
def test_build_revert_round_trip(kind, num_codebooks, num_frames):
    codes = torch.randint(0, SPECIAL, (3, num_codebooks, num_frames))
    pattern = build_pattern(kind, num_codebooks, num_frames)
    sequence = pattern.build(codes, SPECIAL)
    assert sequence.shape == (3, num_codebooks, pattern.num_steps)
    assert torch.equal(pattern.revert(sequence), codes)
    # every frame appears exactly once; every other position is special; step 0 is the start step
    assert int(pattern.valid.sum()) == num_codebooks * num_frames
    assert torch.all(sequence[:, ~pattern.valid] == SPECIAL)
    assert not pattern.valid[:, 0].any()


def test_layouts():
    delay = build_pattern("delay", 3, 4)
    assert delay.num_steps == 4 + 2 + 1
    assert delay.time_index[2].tolist() == [-1, -1, -1, 0, 1, 2, 3]
    assert build_pattern("parallel", 3, 4).time_index[1].tolist() == [-1, 0, 1, 2, 3]
    flat = build_pattern("flattened", 2, 3)
    assert flat.time_index.tolist() == [[-1, 0, -1, 1, -1, 2, -1], [-1, -1, 0, -1, 1, -1, 2]]
    coarse = build_pattern("coarse_first", 3, 2)
    assert coarse.time_index.tolist() == [[-1, 0, 1, -1, -1], [-1, -1, -1, 0, 1], [-1, -1, -1, 0, 1]]
    custom = build_pattern("delay", 2, 3, delays=[0, 2])
    assert custom.time_index[1].tolist() == [-1, -1, -1, 0, 1, 2]


def test_revert_logits_aligns_predictions_with_targets():
    pattern = build_pattern("delay", 4, 6)
    codes = torch.randint(0, 16, (2, 4, 6))
    sequence = pattern.build(codes, 16)
    # one-hot "logits" at position s that predict exactly the token at step s + 1
    logits = torch.nn.functional.one_hot(sequence[:, :, 1:], 17).float()  # [B, K, S-1, 17]
    assert torch.equal(pattern.revert_logits(logits).argmax(-1), codes)


@pytest.mark.parametrize("num_frames", [3, 5, 12])  # HF skips the mask below 2K - 1 steps
def test_delay_pattern_equals_transformers_musicgen(num_frames):
    num_codebooks = 4
    config = MusicgenDecoderConfig(
        vocab_size=SPECIAL, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=16,
        num_codebooks=num_codebooks, pad_token_id=SPECIAL, bos_token_id=SPECIAL,
    )
    hf = MusicgenForCausalLM(config)
    codes = torch.randint(0, SPECIAL, (2, num_codebooks, num_frames))
    with_bos = torch.cat([torch.full((2, num_codebooks, 1), SPECIAL), codes], dim=-1)
    max_length = num_frames + num_codebooks
    _, hf_pattern = hf.build_delay_pattern_mask(with_bos.reshape(-1, num_frames + 1), SPECIAL, max_length)
    ours = build_pattern("delay", num_codebooks, num_frames).build(codes, SPECIAL)
    assert torch.equal(ours, hf_pattern.reshape(2, num_codebooks, max_length))


def test_bad_patterns():
    with pytest.raises(ValueError, match="unknown codebook pattern 'zigzag'"):
        build_pattern("zigzag", 4, 3)
    with pytest.raises(ValueError, match="delays must be 4 non-negative ints"):
        build_pattern("delay", 4, 3, delays=[0, 1])
    pattern = build_pattern("delay", 4, 3)
    with pytest.raises(ValueError, match="pattern expects 4 x 3"):
        pattern.build(torch.zeros(1, 4, 5, dtype=torch.long), 9)
