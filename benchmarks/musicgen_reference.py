"""The transformers MusicGen decoder both speed benchmarks compare against, and its tokenlm twin."""

from __future__ import annotations

import torch
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

from tokenlm.convert.musicgen_hf import lm_from_musicgen_decoder
from tokenlm.lm.model import LMModel


def build_hf(dim: int, layers: int, heads: int, ffn: int, num_codebooks: int, cardinality: int,
             seed: int = 0) -> MusicgenForCausalLM:
    """A randomly initialised, bias-free MusicGen decoder (SDPA attention, no dropout, no layer drop)."""
    torch.manual_seed(seed)
    config = MusicgenDecoderConfig(
        vocab_size=cardinality,
        num_codebooks=num_codebooks,
        hidden_size=dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        ffn_dim=ffn,
        activation_function="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        layerdrop=0.0,
        attn_implementation="sdpa",
    )
    return MusicgenForCausalLM(config)


def lm_from_hf(hf: MusicgenForCausalLM) -> LMModel:
    """An :class:`LMModel` holding a copy of the weights of the MusicGen decoder ``hf`` (same maths)."""
    return lm_from_musicgen_decoder(hf)
