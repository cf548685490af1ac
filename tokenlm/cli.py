"""The ``tokenlm`` command: ``generate``, ``train``, ``data``, ``eval``, ``codec``, ``convert`` and ``serve``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tokenlm.assets_cli import add_assets_parser
from tokenlm.codec_cli import add_codec_parser
from tokenlm.data.cli import add_data_parser
from tokenlm.data.sources.cli import add_source_parsers
from tokenlm.data.synth.cli import add_synth_parser
from tokenlm.defaults import DEFAULT_FOR_BACKEND
from tokenlm.demo.cli import add_serve_parser
from tokenlm.eval.cli import add_eval_parser, add_retrieval_parser
from tokenlm.eval.detectors_cli import add_detectors_parser

if TYPE_CHECKING:
    from tokenlm.api import Audio

EXAMPLE = 'tokenlm generate "a dog barks twice" --duration 5 --out dog.wav'


def _generate(args: argparse.Namespace) -> int:
    import torch

    from tokenlm.api import TextToAudio
    from tokenlm.defaults import DEFAULT_FOR_BACKEND

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model and args.backend:
        raise ValueError(f"--backend {args.backend} picks a shipped default model; it does not apply with --model")
    if args.stream:
        _check_stream_options(args)
    save_options = _save_options(args) if args.out != "-" else {}  # bad output options fail before the model loads
    model = TextToAudio.from_pretrained(args.model or DEFAULT_FOR_BACKEND[args.backend or "lm"], device=args.device,
                                        dtype=args.dtype)
    if args.stream:
        chunks = model.stream(args.prompt, args.duration, **_sampling_args(args), seed=args.seed,
                              prompt_audio=args.prompt_audio, negative_prompt=args.negative_prompt, melody=args.melody,
                              chunk_seconds=args.chunk_seconds)
        _write_stream(chunks, args, model.sample_rate, round(args.duration * model.sample_rate))
        return 0
    audio = model.generate(
        args.prompt,
        args.duration,
        **_sampling_args(args),
        seed=args.seed,
        progress=not args.quiet,
        prompt_audio=args.prompt_audio,
        negative_prompt=args.negative_prompt,
        melody=args.melody,
    )
    _save(audio, args, save_options)
    return 0


def _check_stream_options(args: argparse.Namespace) -> None:
    """``--stream`` writes as it goes: one prompt to standard output, and only levels that need no look ahead."""
    if args.out == "-" and not isinstance(args.prompt, str):  # main() turns a single prompt into a string
        raise ValueError(f"--stream --out - writes one WAV to standard output: give one prompt, not {len(args.prompt)}")
    if args.normalize not in ("clip", "none"):
        raise ValueError(f"--normalize {args.normalize} needs the whole audio before the first sample; with --stream "
                         "use clip (samples past full scale are clipped) or none")
    if args.out == "-" and args.subtype not in (None, "PCM_16"):
        raise ValueError(f"--stream --out - writes 16-bit PCM; --subtype {args.subtype} applies to files only")


def _write_stream(chunks, args: argparse.Namespace, sample_rate: int, total: int) -> None:
    """Write streamed :class:`~tokenlm.api.Audio` chunks as they come: a 16-bit WAV on standard output
    (``--out -``), or one file per prompt, flushed after every chunk."""
    from tokenlm.audio import pcm16_bytes, wav_stream_header

    if args.out == "-":
        out = sys.stdout.buffer
        header_written = False
        for chunk in chunks:
            if not header_written:
                out.write(wav_stream_header(total, chunk.wav.shape[1], sample_rate))
                header_written = True
            out.write(pcm16_bytes(chunk.wav[0]))
            out.flush()
        return
    import soundfile as sf

    path = Path(args.out)
    files: list = []
    try:
        for chunk in chunks:
            if not files:
                names = [path] if chunk.wav.shape[0] == 1 else [
                    path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(chunk.wav.shape[0])]
                files = [sf.SoundFile(name, "w", samplerate=sample_rate, channels=chunk.wav.shape[1],
                                      subtype=args.subtype or "PCM_16") for name in names]
            for handle, item in zip(files, chunk.wav, strict=True):
                handle.write(item.clamp(-1.0, 1.0).T.numpy() if args.normalize == "clip" else item.T.numpy())
                handle.flush()
    finally:
        for handle in files:
            handle.close()
    for handle in files:
        print(f"wrote {handle.name} ({total / sample_rate:.2f} s at {sample_rate} Hz, streamed)")


def _add_dtype(parser: argparse.ArgumentParser) -> None:
    """``--dtype``: the generator network's inference dtype (``TextToAudio.from_pretrained(..., dtype=...)``)."""
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="inference dtype of the LM / DiT: auto (default: bf16 weights on a CPU with AVX-512 BF16 "
                             "or AMX, bf16 autocast on CUDA, float32 elsewhere), float32 or bfloat16")


def _sampling_args(args: argparse.Namespace) -> dict:
    """The sampling options given on the command line (the others keep the model backend's defaults)."""
    names = {"top_k": "top_k", "top_p": "top_p", "temperature": "temperature", "cfg": "cfg_coef",
             "steps": "steps", "cfg_rescale": "cfg_rescale", "scheduler": "scheduler"}
    return {key: getattr(args, option) for option, key in names.items() if getattr(args, option, None) is not None}


def _edit(args: argparse.Namespace) -> int:
    from tokenlm.api import TextToAudio

    save_options = _save_options(args)  # bad output options fail before the model loads
    model = TextToAudio.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    mask = None
    if args.mask is not None:
        start, _, end = args.mask.partition(":")
        try:
            mask = (float(start), float(end))
        except ValueError as error:
            raise ValueError(f"--mask must be START:END in seconds, got {args.mask!r}") from error
    audio = model.edit(
        args.prompt, args.audio, mode=args.mode, strength=args.strength, mask=mask, cutoff_hz=args.cutoff_hz,
        seed=args.seed, **_sampling_args(args),
    )
    _save(audio, args, save_options)
    return 0


#: ``--normalize`` values, as ``tokenlm.audio.NORMALIZE_MODES`` (spelled out so that ``tokenlm --help`` needs no torch)
NORMALIZE_HELP = (
    "level of the written files: clip (the default) keeps the level the model made and only scales audio that "
    "would pass full scale down as a whole (one gain for all prompts, so their relative levels are kept), saying "
    "so; none writes the samples as they are; peak (-1 dBFS), rms (--rms-db) and loudness (--loudness-db) set "
    "each file's level, keeping peaks at or below -1 dBFS"
)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--normalize``, ``--loudness-db``, ``--rms-db`` and ``--subtype`` (how ``generate`` / ``edit`` write files)."""
    parser.add_argument("--normalize", default="clip", metavar="{none,clip,peak,rms,loudness}", help=NORMALIZE_HELP)
    parser.add_argument("--loudness-db", type=float, default=None,
                        help="target of --normalize loudness, in LUFS (default -14)")
    parser.add_argument("--rms-db", type=float, default=None, help="target of --normalize rms, in dBFS (default -18)")
    parser.add_argument("--subtype", default=None, metavar="{PCM_16,PCM_24,FLOAT}",
                        help="sample format of the file (default: PCM_16 for .wav and .flac, Vorbis for .ogg); "
                        "FLOAT keeps the samples bit for bit")


def _save_options(args: argparse.Namespace) -> dict:
    """``Audio.save`` keyword arguments from the output options, checked (with ``--out``) before any work is done."""
    from tokenlm.audio import (
        CLI_SUBTYPES,
        DEFAULT_LOUDNESS_DB,
        DEFAULT_RMS_DB,
        NORMALIZE_MODES,
        audio_format,
        check_level_target,
    )

    if args.normalize not in NORMALIZE_MODES:
        raise ValueError(f"--normalize must be one of {', '.join(NORMALIZE_MODES)}; got {args.normalize!r}")
    for flag, mode in (("loudness_db", "loudness"), ("rms_db", "rms")):
        if getattr(args, flag) is not None and args.normalize != mode:
            raise ValueError(f"--{flag.replace('_', '-')} sets the target of --normalize {mode}; "
                             f"it does not apply with --normalize {args.normalize}")
    subtype = args.subtype
    if subtype is not None and subtype.upper() not in CLI_SUBTYPES:
        raise ValueError(f"--subtype must be one of {', '.join(CLI_SUBTYPES)}; got {subtype!r}")
    audio_format(args.out, subtype)  # the container can hold it (.ogg cannot hold PCM_24, .flac no FLOAT)
    loudness_db = DEFAULT_LOUDNESS_DB if args.loudness_db is None else args.loudness_db
    rms_db = DEFAULT_RMS_DB if args.rms_db is None else args.rms_db
    return {"normalize": args.normalize, "subtype": subtype,
            "loudness_db": check_level_target(loudness_db, "--loudness-db"),
            "rms_db": check_level_target(rms_db, "--rms-db")}


def _save(audio: Audio, args: argparse.Namespace, options: dict) -> None:
    """Write ``audio`` to ``--out``; what changed the level (a scale-down against clipping, a missed target) is
    printed to stderr as a warning line, the files written to stdout."""
    import warnings

    from tokenlm.audio import LevelWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LevelWarning)
        paths = audio.save(args.out, **options)
    for warning in caught:
        if issubclass(warning.category, LevelWarning):
            print(f"tokenlm {args.command}: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    for path in paths:
        print(f"wrote {path} ({audio.duration:.2f} s at {audio.sample_rate} Hz)")


def _add_diffusion_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (diffusion models; default 50)")
    parser.add_argument("--cfg-rescale", type=float, default=None,
                        help="guidance rescale phi in [0, 1] (diffusion models; default 0.75)")
    parser.add_argument("--scheduler", choices=["ddim", "dpmpp"], default=None,
                        help="diffusion sampler (default ddim)")


def _train(args: argparse.Namespace) -> int:
    from tokenlm.train.main import main as train_main

    return train_main(args.overrides)


#: what ``tokenlm convert`` reads
CONVERT_FORMATS = ("musicgen-hf", "audiocraft", "encodec")


def _convert(args: argparse.Namespace) -> int:
    for flag, formats in (("t5", ("audiocraft",)), ("encodec", ("audiocraft",)), ("bandwidth", ("encodec",))):
        if getattr(args, flag) is not None and args.source_format not in formats:
            raise ValueError(f"--{flag} applies to {' / '.join(formats)} sources, not {args.source_format!r}")
    if args.source_format == "musicgen-hf":
        from tokenlm.convert.musicgen_hf import convert_musicgen_hf

        destination = convert_musicgen_hf(args.src, args.dst)
    elif args.source_format == "audiocraft":
        from tokenlm.convert.audiocraft_lm import convert_audiocraft

        destination = convert_audiocraft(args.src, args.dst, t5=args.t5, encodec=args.encodec)
    else:
        from tokenlm.convert.encodec_checkpoints import convert_encodec_checkpoint

        options = {"bandwidth": args.bandwidth} if args.bandwidth is not None else {}
        destination = convert_encodec_checkpoint(args.src, args.dst, **options)
        print(f"wrote EnCodec folder {destination}")
        return 0
    print(f"wrote tokenlm checkpoint {destination}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenlm", description="Text-to-audio and text-to-music generation.")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="generate audio from a text prompt", epilog=f"example: {EXAMPLE}")
    gen.add_argument("prompt", nargs="+", help="one or more text prompts (one output file each)")
    gen.add_argument("--model", help="checkpoint folder, diffusers pipeline folder, or a shipped default: 'default' "
                     "(token LM) or 'default-ldm' (default: the shipped model of --backend)")
    gen.add_argument("--backend", choices=sorted(DEFAULT_FOR_BACKEND), default=None,
                     help="without --model: the shipped default token LM (lm, the default) or latent diffusion (ldm)")
    gen.add_argument("--duration", type=float, default=5.0, help="seconds of audio (default 5)")
    gen.add_argument("--out", default="out.wav", help="output file; several prompts give out_0.wav, out_1.wav...")
    gen.add_argument("--seed", type=int, default=None, help="seed for reproducible output")
    gen.add_argument("--top-k", type=int, default=None,
                     help="top-k sampling (LM; 0 disables; default: the model's own, else 250)")
    gen.add_argument("--top-p", type=float, default=None, help="top-p sampling in [0, 1] (LM; 0 disables)")
    gen.add_argument("--temperature", type=float, default=None,
                     help="sampling temperature (LM; 0 = greedy; default: the model's own, else 1)")
    gen.add_argument("--cfg", type=float, default=None,
                     help="classifier-free guidance coefficient (1 = none; default 3 for LMs, 5 for diffusion)")
    _add_diffusion_options(gen)
    gen.add_argument("--prompt-audio", default=None, help="audio file to continue")
    gen.add_argument("--stream", action="store_true",
                     help="write the audio while it is generated (token LMs; --out - streams a WAV to stdout)")
    gen.add_argument("--chunk-seconds", type=float, default=0.5,
                     help="with --stream: seconds of audio per write (default 0.5)")
    gen.add_argument("--melody", default=None,
                     help="audio file of a tune to follow in the timbre the prompt asks for (models with a chroma "
                          "conditioner, such as MusicGen-Melody)")
    gen.add_argument("--negative-prompt", default=None,
                     help="what guidance steers away from, for every prompt (diffusers pipeline folders)")
    gen.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    _add_dtype(gen)
    gen.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_output_options(gen)
    gen.set_defaults(func=_generate)

    edit = commands.add_parser(
        "edit", help="edit audio with a diffusion model (style transfer, inpainting, super-resolution)",
        epilog='example: tokenlm edit "a cat meows" --audio in.wav --mode inpaint --mask 0.5:1.2 --model ckpt',
    )
    edit.add_argument("prompt", nargs="+", help="the target description (one per output)")
    edit.add_argument("--audio", required=True, help="audio file to edit")
    edit.add_argument("--model", required=True, help="diffusion checkpoint folder")
    edit.add_argument("--mode", choices=["style", "inpaint", "superres"], default="style", help="kind of edit")
    edit.add_argument("--strength", type=float, default=None, help="style / superres strength in [0, 1] (0.6)")
    edit.add_argument("--mask", default=None, help="inpainting span START:END in seconds")
    edit.add_argument("--cutoff-hz", type=float, default=None, help="superres: keep the input below this")
    edit.add_argument("--cfg", type=float, default=None, help="classifier-free guidance coefficient (default 5)")
    _add_diffusion_options(edit)
    edit.add_argument("--out", default="edit.wav", help="output file")
    edit.add_argument("--seed", type=int, default=None, help="seed for reproducible output")
    edit.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    _add_dtype(edit)
    _add_output_options(edit)
    edit.set_defaults(func=_edit)

    train = commands.add_parser(
        "train", help="train a model from a hydra recipe",
        epilog="example: tokenlm train recipe=demo_lm solver.steps=200",
    )
    train.add_argument("overrides", nargs="*", help="hydra overrides: recipe=NAME key=value ...")
    train.set_defaults(func=_train)

    conv = commands.add_parser("convert", help="convert other projects' weights into a tokenlm checkpoint")
    conv.add_argument(
        "source_format", choices=CONVERT_FORMATS,
        help="format of SRC: musicgen-hf (a transformers MusicGen folder), audiocraft (a folder with state_dict.bin "
        "and compression_state_dict.bin), encodec (an encodec package .th file or an audiocraft "
        "compression_state_dict.bin: writes a Hugging Face EnCodec folder)",
    )
    conv.add_argument("src", help="source folder (or .th file for encodec)")
    conv.add_argument("dst", help="destination folder")
    conv.add_argument("--t5", help="audiocraft: local folder of the T5 named in xp.cfg (default: local HF cache)")
    conv.add_argument(
        "--encodec", help="audiocraft: local Hugging Face EnCodec folder when compression_state_dict.bin only names "
        "a pretrained one such as facebook/encodec_32khz (default: local HF cache)",
    )
    conv.add_argument("--bandwidth", type=float, help="encodec: target bandwidth in kbps (default: the lowest)")
    conv.set_defaults(func=_convert)

    data_commands = add_data_parser(commands)  # tokenlm data index | encode
    add_synth_parser(data_commands)  # tokenlm data synth
    add_source_parsers(data_commands)  # tokenlm data music | speech | recorded | any installed source
    add_eval_parser(commands)  # tokenlm eval
    add_detectors_parser(commands)  # tokenlm detectors (validate the music detectors on held-out renders)
    add_retrieval_parser(commands)  # tokenlm retrieval (a CLAP's text-audio retrieval)
    add_codec_parser(commands)  # tokenlm codec eval | export
    add_assets_parser(commands)  # tokenlm assets list | pack
    add_serve_parser(commands)  # tokenlm serve (the web demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tokenlm`` console script; user errors print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) in ("generate", "edit") and len(args.prompt) == 1:
        args.prompt = args.prompt[0]
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"tokenlm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
