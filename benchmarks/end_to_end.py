"""End to end, text -> WAV: ``TextToAudio.generate`` against ``MusicgenForConditionalGeneration.generate``.

Both sides start from the same transformers MusicGen folder (random weights: a T5 text encoder, a 512 x 8 decoder
over 4 x 2048 codes, MusicGen's 32 kHz EnCodec) and turn one prompt into 10 s of audio (500 frames) with top-k 250,
temperature 1 and CFG 3: tokenizing, text encoding, every decoder step, sampling and the EnCodec decode are all
timed. tokenlm loads the folder with ``tokenlm.convert.load_musicgen_hf`` and runs in its default dtype
(``set_dtype("auto")``, as ``TextToAudio.from_pretrained`` does); transformers runs at its default float32, and,
where tokenlm's dtype is bf16, also cast to bf16.

    .venv/bin/python benchmarks/end_to_end.py               # 10 s of audio, best of 3 per side, 2 threads
    .venv/bin/python benchmarks/end_to_end.py --quick       # tiny models, 1 s: a smoke run of seconds

The text encoder and the EnCodec decoder are the same transformers modules on both sides; tokenlm's default dtype
also runs the EnCodec decoder in bf16 on a CPU with native bf16 (``EncodecCodec.set_decoder_dtype``), and the last
lines say how much of each side's time the decode takes.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import reports
import torch
import transformers
from probes import warn_if_busy
from transformers import (
    EncodecConfig,
    EncodecFeatureExtractor,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenProcessor,
    T5Config,
    T5Tokenizer,
)

from conditioners.text.sentencepiece import train_sentencepiece
from tokenlm.api import TextToAudio
from tokenlm.codecs import tiny_encodec_config
from tokenlm.common.device import cpu_has_native_bf16
from tokenlm.convert.musicgen_hf import load_musicgen_hf

PROMPT = "lo-fi hip hop with a mellow piano and soft drums"
TOP_K, CFG_COEF = 250, 3.0
CARD, CODEBOOKS = 2048, 4
#: tokenlm must be at least this many times faster than transformers at float32, end to end
TARGET = 3.0
#: MusicGen's EnCodec (facebook/encodec_32khz): 32 kHz mono, hop 640 (50 frames/s), 4 codebooks of 2048
ENCODEC_32KHZ = {
    "sampling_rate": 32000, "audio_channels": 1, "target_bandwidths": [2.2], "hidden_size": 128,
    "num_filters": 64, "num_residual_layers": 1, "upsampling_ratios": [8, 5, 4, 4], "num_lstm_layers": 2,
    "codebook_size": CARD, "codebook_dim": 128, "use_causal_conv": False, "normalize": False,
    "chunk_length_s": None, "overlap": None, "norm_type": "weight_norm", "pad_mode": "reflect",
    "compress": 2, "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_growth_rate": 2,
    "use_conv_shortcut": False, "trim_right_ratio": 1.0,
}


def captions() -> list[str]:
    """Text for the benchmark's SentencePiece vocabulary (timing does not depend on the words)."""
    styles = ["lo-fi hip hop", "jazz", "ambient", "rock", "techno", "folk", "orchestral", "blues"]
    parts = ["with a mellow piano", "with soft drums", "with a walking bass", "with strings", "and a warm pad"]
    return [f"{style} {part} {extra}" for style in styles for part in parts for extra in parts]


def build_musicgen(folder: Path, quick: bool) -> None:
    """Save a seeded random MusicGen (+ processor) into ``folder``."""
    spm_dir = folder / "spm"
    spm = train_sentencepiece(captions(), spm_dir, vocab_size=40)
    (spm_dir / "spiece.model").write_bytes(spm.read_bytes())
    tokenizer = T5Tokenizer.from_pretrained(spm_dir, extra_ids=0)
    if quick:
        text = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
        codec = tiny_encodec_config(codebook_size=CARD, num_codebooks=CODEBOOKS)
        hidden, layers, heads, ffn = 64, 2, 4, 256
    else:  # t5-small's shape; the generate.py "small" decoder
        text = T5Config(vocab_size=len(tokenizer), d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8)
        codec, hidden, layers, heads, ffn = ENCODEC_32KHZ, 512, 8, 8, 2048
    text.pad_token_id, text.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    text.decoder_start_token_id = 0
    decoder = MusicgenDecoderConfig(
        vocab_size=CARD, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, ffn_dim=ffn,
        num_codebooks=CODEBOOKS, pad_token_id=CARD, bos_token_id=CARD, max_position_embeddings=2048,
    )
    config = MusicgenConfig(text_encoder=text, audio_encoder=EncodecConfig(**codec), decoder=decoder)
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(config).eval()
    model.generation_config.max_length = 1600
    model.generation_config.decoder_start_token_id = CARD
    model.save_pretrained(folder)
    sample_rate = codec["sampling_rate"]
    MusicgenProcessor(EncodecFeatureExtractor(feature_size=1, sampling_rate=sample_rate), tokenizer).save_pretrained(
        folder)


def hf_side(model: MusicgenForConditionalGeneration, processor: MusicgenProcessor, frames: int):
    """transformers, text -> waveform ``[1, 1, N]``."""
    def run(n: int = frames) -> torch.Tensor:
        inputs = processor(text=[PROMPT], padding=True, return_tensors="pt")
        return model.generate(**inputs, do_sample=True, top_k=TOP_K, guidance_scale=CFG_COEF, max_new_tokens=n + 3)
    return run


def tokenlm_side(model: TextToAudio, frame_rate: float, frames: int):
    """tokenlm, text -> waveform ``[1, C, N]``."""
    def run(n: int = frames) -> torch.Tensor:
        return model.generate(PROMPT, n / frame_rate, top_k=TOP_K, cfg_coef=CFG_COEF, seed=0).wav
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio (default 10: 500 frames)")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per side (the fastest counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny models, 1 s, 1 repeat: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 1.0, 1
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_musicgen(folder, args.quick)
        hf = MusicgenForConditionalGeneration.from_pretrained(folder).eval()
        processor = MusicgenProcessor.from_pretrained(folder)
        backend = load_musicgen_hf(folder).set_dtype("auto")
    model = TextToAudio(backend)
    frames = round(args.seconds * backend.frame_rate)
    dtype = str(backend.generator_dtype).removeprefix("torch.")
    print(f"text -> {args.seconds:g} s of audio ({frames} frames), top-k {TOP_K}, CFG {CFG_COEF:g}, "
          f"{args.threads} threads, best of {args.repeats}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"CPU: {reports.cpu_name()}; native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; tokenlm dtype: {dtype}")
    warn_if_busy("before the run")
    sides = {"tokenlm": tokenlm_side(model, backend.frame_rate, frames),
             "transformers fp32": hf_side(hf, processor, frames)}
    if backend.generator_dtype == torch.bfloat16:
        low = copy.deepcopy(hf)
        for module in (low.text_encoder, getattr(low, "enc_to_dec_proj", None), low.decoder):
            if module is not None:  # what a knowing user casts; the codec stays float32 as on tokenlm's side
                module.to(torch.bfloat16)
        sides["transformers bf16"] = hf_side(low, processor, frames)
    best = {name: float("inf") for name in sides}
    with torch.no_grad():
        for run in sides.values():  # warm-up
            run(8)
        for _ in range(args.repeats):
            for name, run in sides.items():
                start = time.perf_counter()
                wav = run()
                best[name] = min(best[name], time.perf_counter() - start)
                expected = frames * round(backend.sample_rate / backend.frame_rate)
                if wav.shape[-1] != expected:
                    raise RuntimeError(f"{name} returned {wav.shape[-1]} samples, expected {expected}")
        codes = torch.randint(0, CARD, (1, CODEBOOKS, frames))
        start = time.perf_counter()
        backend.codec.decode(codes)
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        hf.audio_encoder.decode(codes[None], [None])
        hf_decode_s = time.perf_counter() - start
    print(f"{'side':20} {'seconds':>9} {'x real time':>12}")
    for name, seconds in best.items():
        print(f"{name:20} {seconds:9.2f} {args.seconds / seconds:11.2f}x")
    codec_dtype = str(backend.codec.decoder_dtype).removeprefix("torch.")
    print(f"of which the EnCodec decode: tokenlm {decode_s:.2f} s ({codec_dtype}), transformers {hf_decode_s:.2f} s "
          "(float32)")
    ratio = best["transformers fp32"] / best["tokenlm"]
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"ratio tokenlm / transformers fp32: {ratio:.2f}x   target >= {TARGET:g}x {verdict}")
    if "transformers bf16" in best:
        print(f"ratio tokenlm / transformers bf16 decoder: {best['transformers bf16'] / best['tokenlm']:.2f}x")


if __name__ == "__main__":
    main()
