"""CUDA checks that a CPU machine cannot run (skipped there; ``scripts/gpu_check.sh`` runs them on a GPU)."""

from __future__ import annotations

import pytest
import torch

from conditioners.base import Condition
from tokenlm import TextToAudio
from tokenlm.lm.generate import generate_codes
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_flash_attention_serves_training_and_generation_under_bf16_autocast():
    """With only the flash kernel allowed, the LM's causal self-attention and unmasked cross-attention must run
    (SDPA raises when no allowed kernel can serve a call), in training and in generation."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    device = torch.device("cuda")
    torch.manual_seed(0)
    lm = LMModel(LMConfig(dim=128, num_layers=2, num_heads=4, ffn_dim=256, cardinality=64)).to(device)
    embeds = torch.randn(2, 8, 128, device=device)
    full = torch.ones(2, 8, dtype=torch.bool, device=device)  # nothing masked: the mask is dropped, flash can serve
    sequence = torch.randint(0, 64, (2, 4, 32), device=device)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = lm(sequence, lm.cross_context(embeds, full))
        logits.float().logsumexp(-1).mean().backward()
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in lm.parameters() if p.requires_grad)
    lm.eval()
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        codes = generate_codes(lm, build_pattern("delay", 4, 16), Condition(embeds[:1], full[:1]), None,
                               SamplingParams(top_k=10, cfg_coef=1.0))
    assert codes.shape == (1, 4, 16) and int(codes.min()) >= 0


@pytest.mark.gpu
@needs_cuda
def test_default_model_generates_on_cuda_like_on_cpu():
    """The shipped default LM on CUDA (bf16 autocast) follows the same prompt: 880 Hz within 50 cents."""
    import math

    from tokenlm.eval.analysis import analyze

    model = TextToAudio.from_pretrained("default", device="cuda")
    assert model.backend.autocast_enabled
    audio = model.generate(["a high sine tone at 880 Hz"] * 5, 2.0, seed=0)
    pitches = [analyze(wav[0].float().cpu().numpy(), audio.sample_rate).f0_hz for wav in audio.wav]
    near = [f for f in pitches if f is not None and abs(1200 * math.log2(f / 880.0)) < 50]
    assert len(near) >= 3, pitches
