"""MusicGen-Melody and stereo MusicGen through tokenlm against transformers, beside the mono text-only model.

Three random models of one decoder size (``small``: 512 wide, 8 layers, 4 x 2048 codes per channel; a tiny T5 and a
tiny EnCodec, so the time is the decoder's) are saved as transformers folders and loaded by tokenlm:

- ``mono``: text-only MusicGen, cross-attending to the text;
- ``melody``: MusicGen-Melody, 235 chroma frames and the text prepended (a 2 s melody, repeated);
- ``stereo``: stereo MusicGen, 8 interleaved codebooks.

Both sides generate one prompt end to end (text and melody in, waveform out) with classifier-free guidance
(effective batch 2), top-k 250, ``--steps`` decoder steps. tokenlm runs in the dtype ``from_pretrained`` picks
(bf16 on a CPU with AVX-512 BF16 or AMX); transformers in its default float32. Each variant's ratio (tokenlm steps/s
over transformers steps/s) is set against the mono ratio of the same run: the melody and stereo paths must keep it
within 10 % (``ratio / mono ratio >= 0.9``).

Usage::

    .venv/bin/python benchmarks/melody_stereo.py                # 250 steps, small, 3 repeats, 2 threads
    .venv/bin/python benchmarks/melody_stereo.py --quick        # a smoke run of seconds (tiny decoder, 20 steps)
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from pathlib import Path

import reports
import torch
import transformers
from probes import Timing, time_interleaved, warn_if_busy
from transformers import (
    AutoTokenizer,
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenMelodyConfig,
    MusicgenMelodyDecoderConfig,
    MusicgenMelodyForConditionalGeneration,
    T5Config,
    T5Tokenizer,
)

from conditioners.base import AudioValue
from conditioners.text.sentencepiece import train_sentencepiece
from tokenlm import TextToAudio
from tokenlm.codecs import tiny_encodec_config
from tokenlm.common.hf import quiet_hf_loading

CARD, K, RATE = 2048, 4, 16000
TOP_K, CFG_COEF = 250, 3.0
PROMPT = "a slow waltz on the piano with soft strings"
#: a variant's ratio against transformers must stay at least this fraction of the mono ratio
KEEP = 0.9
SIZES = {"tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256),
         "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, ffn_dim=2048)}
VARIANTS = ("mono", "melody", "stereo")


def tokenizer_folder(folder: Path) -> Path:
    """A T5 tokenizer over a small SentencePiece model trained on a few hundred words of captions."""
    words = "a slow fast waltz on the piano with soft loud strings drums flute guitar bass in minor major key".split()
    captions = [" ".join(words[(i * 7 + j) % len(words)] for j in range(8)) for i in range(200)]
    spm = train_sentencepiece(captions, folder, vocab_size=40)
    (folder / "spiece.model").write_bytes(spm.read_bytes())
    T5Tokenizer.from_pretrained(folder, extra_ids=0).save_pretrained(folder)
    return folder


def save_variant(variant: str, size: str, folder: Path, tokenizer: Path) -> torch.nn.Module:
    """Save a random ``variant`` model of decoder ``size`` with its tokenizer into ``folder``; return it."""
    vocab = len(AutoTokenizer.from_pretrained(tokenizer))
    t5 = T5Config(vocab_size=vocab, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, pad_token_id=0,
                  eos_token_id=1, decoder_start_token_id=0)
    encodec = EncodecConfig(**tiny_encodec_config(codebook_size=CARD, num_codebooks=K))
    decoder = dict(vocab_size=CARD, pad_token_id=CARD, bos_token_id=CARD, num_codebooks=K, **SIZES[size])
    torch.manual_seed(0)
    if variant == "melody":
        config = MusicgenMelodyConfig(text_encoder=t5, audio_encoder=encodec,
                                      decoder=MusicgenMelodyDecoderConfig(**decoder))
        model = MusicgenMelodyForConditionalGeneration(config)
    else:
        stereo = dict(num_codebooks=2 * K, audio_channels=2) if variant == "stereo" else {}
        config = MusicgenConfig(text_encoder=t5, audio_encoder=encodec,
                                decoder=MusicgenDecoderConfig(**{**decoder, **stereo}))
        model = MusicgenForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = CARD
    model.generation_config.max_length = 1500
    with quiet_hf_loading():
        model.eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(folder)
    return model


def melody() -> torch.Tensor:
    """``[1, N]`` two seconds of a four-note tune at 32 kHz (MusicGen-Melody's chroma rate)."""
    t = torch.arange(64000) / 32000
    return 0.5 * torch.sin(2 * torch.pi * 440.0 * 2 ** (torch.floor(t * 2) / 12) * t)[None]


def runners(variant: str, model: torch.nn.Module, folder: Path, steps: int) -> dict[str, object]:
    """The two sides of one variant: text (and melody) in, waveform out, ``steps`` decoder steps each."""
    ours = TextToAudio.from_pretrained(folder)
    channel_k = K
    frames = steps - (channel_k - 1)  # the delay pattern's last steps finish the delayed codebooks
    duration = (frames - 0.5) / ours.backend.frame_rate
    tune = melody()[:, : round(duration * 32000)]  # no longer than the audio asked for, as tokenlm would cut it
    inputs = AutoTokenizer.from_pretrained(folder)([PROMPT], return_tensors="pt")
    extra = {}
    if variant == "melody":
        chroma = ours.backend.conditioning.conditioners["melody"]
        extra["input_features"] = chroma.features([AudioValue(tune, 32000)])["chroma"]
    kwargs = {"melody": tune, "melody_sample_rate": 32000} if variant == "melody" else {}

    def tokenlm_side() -> torch.Tensor:
        return ours.generate(PROMPT, duration, top_k=TOP_K, cfg_coef=CFG_COEF, **kwargs).wav

    def transformers_side() -> torch.Tensor:
        with torch.inference_mode():
            return model.generate(**inputs, **extra, do_sample=True, top_k=TOP_K, guidance_scale=CFG_COEF,
                                  max_new_tokens=steps)

    return {"tokenlm": tokenlm_side, "transformers": transformers_side}


def check(channels: int, frames: int):
    def inner(side: str, wav: torch.Tensor) -> None:
        if wav.shape[1] != channels or wav.shape[-1] < (frames - 1) * RATE // 50:
            raise RuntimeError(f"{side} returned audio {tuple(wav.shape)}: expected {channels} channels, "
                               f"about {frames} frames")
    return inner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=250, help="decoder steps per generation (default 250)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per side (best one counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny decoder, 20 steps, 1 repeat")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.size, args.repeats = 20, "tiny", 1
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    warn_if_busy("before the benchmark")
    print(f"MusicGen variants end to end, {args.size} decoder, {args.steps} steps, CFG {CFG_COEF}, top-k {TOP_K}; "
          f"{reports.cpu_name()}, {args.threads} threads, best of {args.repeats}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = tokenizer_folder(Path(tmp) / "tokenizer")
        for variant in VARIANTS:
            folder = Path(tmp) / variant
            model = save_variant(variant, args.size, folder, tokenizer)
            runs = runners(variant, model, folder, args.steps)
            for run in runs.values():  # warm-up: first calls allocate and pack
                run()
            frames = args.steps - (K - 1)
            timings: dict[str, Timing] = time_interleaved(
                {side: functools.partial(run) for side, run in runs.items()}, args.repeats,
                check(2 if variant == "stereo" else 1, frames))
            ratios[variant] = timings["tokenlm"].steps_per_s(args.steps) / timings["transformers"].steps_per_s(
                args.steps)
            print(f"  {variant:7s} tokenlm {timings['tokenlm'].steps_per_s(args.steps):6.1f} steps/s, transformers "
                  f"{timings['transformers'].steps_per_s(args.steps):6.1f} steps/s: {ratios[variant]:.2f}x")
    for variant in ("melody", "stereo"):
        kept = ratios[variant] / ratios["mono"]
        verdict = "ok" if kept >= KEEP else "MISSED"
        print(f"  {variant} keeps {kept:.2f} of the mono ratio (target >= {KEEP}) {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": reports.cpu_name(), "steps": args.steps, "size": args.size,
                                               "ratios": ratios}, indent=2) + "\n")


if __name__ == "__main__":
    main()
