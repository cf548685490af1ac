"""The reference side of the speed benchmarks: transformers' MusicGen decoder, and its tokenlm twin.

Everything here is what ``generate.py`` and ``train_step.py`` need from transformers: building the decoder, copying
its weights into an ``LMModel``, checking both do the same arithmetic, driving MusicGen's own ``generate`` and its
own training loss, and rebuilding tokenlm's optimiser over it. Where transformers' API moved between the releases
that ``pyproject.toml`` allows (``transformers>=4.45``), the difference is handled here, once, and named.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import transformers
from packaging.specifiers import SpecifierSet
from transformers import DynamicCache, EncoderDecoderCache, MusicgenDecoderConfig, MusicgenForCausalLM

from tokenlm.convert.musicgen_hf import lm_from_musicgen_decoder
from tokenlm.lm.model import LMModel
from tokenlm.train.optim import parameter_groups


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


@torch.no_grad()
def check_same_logits(lm: LMModel, hf: MusicgenForCausalLM, embeds: torch.Tensor) -> None:
    """Raise when the two models disagree on the logits of a random 12-step sequence (a bad weight copy)."""
    num_codebooks, cardinality = lm.config.num_codebooks, lm.config.cardinality
    sequence = torch.randint(0, cardinality + 1, (1, num_codebooks, 12))  # the special token included
    mask = torch.ones(embeds.shape[:2], dtype=torch.bool)
    ours = lm(sequence, lm.cross_context(embeds, mask))  # [1, K, T, card]
    theirs = hf(input_ids=sequence.flatten(0, 1), encoder_hidden_states=embeds, use_cache=False).logits
    theirs = theirs.view_as(ours)  # [B * K, T, card] -> [B, K, T, card]
    if not torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4):
        error = (ours - theirs).abs().max().item()
        raise RuntimeError(f"tokenlm and transformers logits differ by up to {error:.2e}: the weight copy is wrong")


# ---------------------------------------------------------------------------------------------- generation


#: releases whose ``MusicgenForCausalLM.generate`` always raises ``AttributeError: 'int' object has no attribute
#: 'shape'`` (a typo, ``input_ids_length.shape[1]``, fixed by huggingface/transformers#46974); pyproject.toml's dev
#: extra leaves them out
BROKEN_GENERATE = SpecifierSet(">=4.54.1,<5.15")


def check_generate_works() -> None:
    """Raise, naming the release and the fix, where transformers' own MusicGen ``generate`` cannot run."""
    if BROKEN_GENERATE.contains(transformers.__version__, prereleases=True):
        raise RuntimeError(
            f"transformers {transformers.__version__}'s MusicgenForCausalLM.generate always fails (a typo fixed by "
            f"huggingface/transformers#46974; broken in {BROKEN_GENERATE}): install the locked version "
            "(bash scripts/setup.sh) or any release outside that range"
        )


def cache_keyword(hf: MusicgenForCausalLM) -> str:
    """The keyword MusicGen's ``generate`` takes a cache under in this transformers version.

    transformers renamed ``past_key_values`` to ``cache`` in the 5.x series (the old name is deprecated, to be removed
    in 5.40, and ``generate`` already refuses it as an unused model argument); 4.x only knows ``past_key_values``.
    """
    names = inspect.signature(hf.prepare_inputs_for_generation).parameters
    return "cache" if "cache" in names else "past_key_values"


def cache_arguments(hf: MusicgenForCausalLM) -> dict[str, Any]:
    """The cache keyword argument of ``generate``: an empty :class:`EncoderDecoderCache` under
    :func:`cache_keyword`, or nothing where MusicGen only knows the legacy tuple caches that ``generate`` makes
    itself (older releases, 4.45 for one: ``_supports_cache_class`` is false, and a ``Cache`` object is refused)."""
    if getattr(hf, "_supports_cache_class", True) is False:
        return {}
    return {cache_keyword(hf): new_cache(hf)}


def new_cache(hf: MusicgenForCausalLM) -> EncoderDecoderCache:
    """An empty self-attention + cross-attention cache (``DynamicCache`` takes the config from transformers 4.56)."""
    try:
        parts = DynamicCache(config=hf.config), DynamicCache(config=hf.config)
    except TypeError:  # transformers < 4.56: DynamicCache() takes no config
        parts = DynamicCache(), DynamicCache()
    return EncoderDecoderCache(*parts)


def hf_generate(hf: MusicgenForCausalLM, embeds: torch.Tensor, mask: torch.Tensor, steps: int, *, top_k: int,
                cfg_coef: float) -> torch.Tensor:
    """``steps`` decoder steps of transformers' MusicGen decoder with CFG -> codes ``[1, K, steps - (K - 1)]``.

    ``embeds`` ``[1, S, D]`` / ``mask`` ``[1, S]`` is the condition. ``MusicgenForCausalLM.generate`` doubles the
    decoder batch itself when ``guidance_scale > 1``; the caller supplies the doubled encoder states, conditional
    rows first, the null rows (zeros, masked out) second, just as ``MusicgenForConditionalGeneration`` builds them.
    What the decoder-only path needs spelled out:

    - an ``EncoderDecoderCache``: with the default ``DynamicCache`` the cross-attention keys are appended to the
      self-attention cache and the first forward fails on mismatched shapes (:func:`cache_arguments`);
    - ``decoder_start_token_id`` and ``num_return_sequences``, which the decoder-only path leaves unset;
    - an all-ones ``attention_mask``: the start token equals the pad token, so an inferred mask would hide it
      (and cost a masked attention kernel every step).
    """
    check_generate_works()
    num_codebooks, cardinality = hf.config.num_codebooks, hf.config.vocab_size
    start = torch.full((num_codebooks, 1), cardinality, dtype=torch.long, device=embeds.device)  # [B * K, 1]
    return hf.generate(
        start,
        attention_mask=torch.ones_like(start),
        encoder_hidden_states=torch.cat([embeds, torch.zeros_like(embeds)]),
        encoder_attention_mask=torch.cat([mask, torch.zeros_like(mask)]).long(),
        do_sample=True,
        top_k=top_k,
        temperature=1.0,
        guidance_scale=cfg_coef,
        max_new_tokens=steps,
        decoder_start_token_id=cardinality,
        num_return_sequences=1,
        **cache_arguments(hf),
    )


# ---------------------------------------------------------------------------------------------- training


def hf_loss(hf: MusicgenForCausalLM, sequence: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MusicGen's own training loss on a delay-pattern ``sequence`` ``[B, K, S]`` (its first step the start token)
    cross-attending to ``embeds`` ``[B, S', D]`` / ``mask`` ``[B, S']``.

    The labels are the sequence after its start step, ``[B, S - 1, K]``: MusicGen shifts them right behind a start
    token (= the special token, so its inputs are the sequence's first ``S - 1`` steps) and ignores labels equal to
    the special token (= the pattern's invalid positions).
    """
    labels = sequence[..., 1:].transpose(1, 2)  # [B, S - 1, K]
    output = hf(labels=labels, encoder_hidden_states=embeds, encoder_attention_mask=mask.long(), use_cache=False)
    return output.loss


def hf_optimizer(hf: MusicgenForCausalLM, like: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimiser ``like`` (tokenlm's, from ``build_optimizer``) rebuilt over ``hf``: same class, same settings.

    ``parameter_groups`` spots tokenlm's ``embeddings`` by name; MusicGen's tables are ``embed_tokens.<k>.weight``,
    so they are moved to the no-decay group by hand, as tokenlm's own tables are. Every constructor setting of
    ``like`` (lr, betas, eps, foreach / fused...) is passed on, so a change to ``build_optimizer`` reaches both sides.
    """
    groups = parameter_groups(hf, like.param_groups[0]["weight_decay"])
    decay, no_decay = groups
    tables = {id(p) for p in hf.model.decoder.embed_tokens.parameters()}
    no_decay["params"] += [p for p in decay["params"] if id(p) in tables]
    decay["params"] = [p for p in decay["params"] if id(p) not in tables]
    if len(like.param_groups) != len(groups):
        raise RuntimeError(f"tokenlm's optimiser has {len(like.param_groups)} parameter groups, expected {len(groups)}")
    for group, ours in zip(groups, like.param_groups, strict=True):
        group["weight_decay"] = ours["weight_decay"]
    accepted = inspect.signature(type(like).__init__).parameters
    settings = {name: value for name, value in like.defaults.items() if name in accepted and name != "params"}
    return type(like)(groups, **settings)


def check_same_groups(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    """Raise unless both optimisers are of one class and update the same number of weights with the same settings."""

    def summary(optimizer: torch.optim.Optimizer) -> list[tuple[int, dict[str, Any]]]:
        return [
            (sum(p.numel() for p in g["params"]), {k: v for k, v in g.items() if k != "params"})
            for g in optimizer.param_groups
        ]

    if type(ours) is not type(theirs) or summary(ours) != summary(theirs):
        raise RuntimeError(f"optimisers differ: tokenlm {summary(ours)} vs transformers {summary(theirs)}")


def check_same_gradients(lm: LMModel, hf: MusicgenForCausalLM, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Raise unless the two sides' losses on one batch (``ours`` from ``lm``, ``theirs`` from ``hf``, not yet
    backpropagated) and their gradients agree; returns the loss. Both models' gradients are cleared after."""
    ours.backward()
    theirs.backward()
    if not torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6):
        raise RuntimeError(f"losses differ: tokenlm {ours.item():.6f}, transformers {theirs.item():.6f}")
    decoder, last = hf.model.decoder, len(lm.blocks) - 1
    pairs = {
        "embeddings": (lm.embeddings.grad, torch.stack([e.weight.grad for e in decoder.embed_tokens])),
        "heads": (lm.heads.grad, torch.stack([h.weight.grad for h in hf.lm_heads])),
        "blocks.0.self_attn.qkv": (
            lm.blocks[0].self_attn.qkv.weight.grad,
            torch.cat([getattr(decoder.layers[0].self_attn, p).weight.grad for p in ("q_proj", "k_proj", "v_proj")]),
        ),
        "blocks.0.cross_attn.kv": (
            lm.blocks[0].cross_attn.kv.weight.grad,
            torch.cat([getattr(decoder.layers[0].encoder_attn, p).weight.grad for p in ("k_proj", "v_proj")]),
        ),
        f"blocks.{last}.fc1": (lm.blocks[last].fc1.weight.grad, decoder.layers[last].fc1.weight.grad),
    }
    for name, (a, b) in pairs.items():
        scale = b.abs().max().item()
        if a is None or not torch.allclose(a, b, rtol=1e-3, atol=1e-3 * scale):
            error = float("nan") if a is None else (a - b).abs().max().item()
            raise RuntimeError(f"gradients of {name} differ by up to {error:.2e} (scale {scale:.2e})")
    lm.zero_grad(set_to_none=True)
    hf.zero_grad(set_to_none=True)
    return ours.item()
