"""``tokenlm eval``: generate (or read) audio for a caption list or manifest, run the suite, write a report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

EXAMPLE = "tokenlm eval --manifest synth/test_heldout.jsonl --model checkpoints/sfx --out eval_report"


def _named_dirs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        name, sep, directory = value.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"{option} takes NAME=DIR (e.g. vggish=weights/vggish), got {value!r}")
        out[name] = directory
    return out


def _as_written(generated: list[tuple[np.ndarray, int]], folder: Path) -> list[tuple[np.ndarray, int]]:
    """Write the generated clips (``[N]`` each) to ``folder`` as ``tokenlm generate`` writes a clip (its default
    level: as generated, scaled down only where it would clip) and return what was written, so that the suite
    judges the audio a user gets; how many clips were scaled down is printed."""
    import warnings

    import torch

    from tokenlm.audio import DEFAULT_NORMALIZE, LevelWarning, level_audio, write_audio

    written = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LevelWarning)
        for index, (wav, rate) in enumerate(generated):
            path = folder / f"clip_{index:05d}.wav"
            leveled = level_audio(torch.from_numpy(wav)[None], rate, DEFAULT_NORMALIZE, name=f"'{path}'")  # [1, N]
            write_audio(path, leveled, rate, normalize="none")
            written.append((leveled[0].numpy().astype(wav.dtype, copy=False), rate))
    scaled = [w for w in caught if issubclass(w.category, LevelWarning)]
    if scaled:
        print(f"{len(scaled)} of {len(generated)} generated clips would clip and were scaled down as a whole, "
              f"as tokenlm generate writes them (first: {scaled[0].message})")
    for other in (w for w in caught if not issubclass(w.category, LevelWarning)):
        warnings.showwarning(other.message, other.category, other.filename, other.lineno)
    return written


def run_eval(args: argparse.Namespace) -> int:
    """Run the suite as the parsed arguments say and write ``report.json`` / ``report.html`` to ``--out``."""
    import numpy as np
    import torch

    from tokenlm.eval.captions import parse_caption
    from tokenlm.eval.embedders import load_classifier, load_embedder
    from tokenlm.eval.inputs import generate_clips, load_clip, match_audio, read_captions, read_entries
    from tokenlm.eval.report import write_report
    from tokenlm.eval.suite import run_suite

    if args.threads:
        torch.set_num_threads(args.threads)
    # weights first: a missing folder fails before any generation
    embedders = {name: load_embedder(name, directory) for name, directory in _named_dirs(args.fad, "--fad").items()}
    classifiers = _named_dirs([args.classifier] if args.classifier else None, "--classifier")
    classifier = next((load_classifier(n, d) for n, d in classifiers.items()), None)
    clap = load_embedder("clap", args.clap) if args.clap else None

    entries = read_entries(args.manifest) if args.manifest is not None else None
    if entries is not None:
        entries = entries[: args.limit] if args.limit else entries
        captions = [entry["description"] for entry in entries]
        labels = [entry["labels"] for entry in entries]
    else:
        captions = read_captions(args.captions)[: args.limit] if args.limit else read_captions(args.captions)
        labels = [parse_caption(caption) for caption in captions]
    out = Path(args.out)
    if args.model is not None:
        duration = args.duration or (float(np.median([e["duration"] for e in entries])) if entries else 5.0)
        given = {"top_k": args.top_k, "temperature": args.temperature, "cfg_coef": args.cfg, "steps": args.steps,
                 "scheduler": args.scheduler}
        sampling = {name: value for name, value in given.items() if value is not None}
        started = time.perf_counter()
        generated = generate_clips(args.model, captions, duration, args.seed, args.batch_size, args.device, sampling,
                                   args.dtype)
        seconds = time.perf_counter() - started  # model loading included: what a user waits for
        generation = {"clips": len(captions), "duration_s": duration, "wall_s": round(seconds, 2),
                      "seconds_per_audio_second": round(seconds / max(len(captions) * duration, 1e-9), 4),
                      "threads": torch.get_num_threads(), "batch_size": args.batch_size}
        generated = _as_written(generated, out / "audio")
    elif args.audio_dir is not None:
        generated = [load_clip(path) for path in match_audio(args.audio_dir, entries, len(captions))]
    elif entries is not None:
        generated = [load_clip(entry["path"]) for entry in entries]
    else:
        raise ValueError("with --captions, give --model DIR to generate or --audio-dir DIR with the audio")
    reference = None
    if entries is not None and (args.model is not None or args.audio_dir is not None) and args.reference == "manifest":
        reference = [load_clip(entry["path"]) for entry in entries]
    report = run_suite(generated, captions, labels, reference, set_size=args.set_size, shuffles=args.shuffles,
                       seed=args.seed, embedders=embedders, classifier=classifier, clap=clap)
    if args.model is not None:
        report["generation"] = generation
        print(f"generated {len(captions)} clips of {duration:g} s in {seconds:.1f} s: "
              f"{generation['seconds_per_audio_second']:.3f} s per second of audio ({generation['threads']} threads)")
    paths = write_report(report, out, generated)
    summary = report["summary"]
    print(f"alignment {summary['alignment']:.3f} (chance {summary['chance'] or 0:.3f}, ceiling "
          f"{summary['ceiling'] or 0:.3f}), Fréchet distance {summary['frechet_distance'] or float('nan'):.3f}")
    print(f"wrote {paths['json']} and {paths['html']}")
    return 0


def add_eval_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``eval`` on the ``tokenlm`` command's subparsers."""
    parser = commands.add_parser("eval", help="evaluate text-audio alignment and quality offline",
                                 epilog=f"example: {EXAMPLE}")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="JSONL manifest (description, labels, path) of the captions to evaluate")
    source.add_argument("--captions", help="text file with one caption per line")
    audio = parser.add_mutually_exclusive_group()
    audio.add_argument("--model", help="tokenlm checkpoint folder to generate with")
    audio.add_argument("--audio-dir", help="folder of generated audio (same file names as the manifest, or one "
                                           "file per caption in name order)")
    parser.add_argument("--out", required=True, help="report folder (report.json, report.html)")
    parser.add_argument("--reference", choices=["manifest", "synth"], default="manifest",
                        help="reference audio: the manifest's files (default) or clips synthesised from the labels")
    parser.add_argument("--duration", type=float, default=None, help="seconds to generate (default: manifest median "
                                                                     "or 5)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N captions")
    parser.add_argument("--seed", type=int, default=0, help="seed for generation, subsets and shuffles")
    parser.add_argument("--set-size", type=int, default=None, help="clips per set for Fréchet distances")
    parser.add_argument("--shuffles", type=int, default=10, help="caption shuffles for the chance level")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generation batch")
    parser.add_argument("--top-k", type=int, default=None,
                        help="top-k sampling for generation (LM; default: the model's own, else 250)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature for generation (LM; default: the model's own, else 1)")
    parser.add_argument("--cfg", type=float, default=None,
                        help="classifier-free guidance for generation (default: the model's own, else 3 for LMs, "
                             "5 for diffusion)")
    parser.add_argument("--steps", type=int, default=None,
                        help="diffusion sampling steps (default: the model's own, else 50)")
    parser.add_argument("--scheduler", choices=("ddim", "dpmpp"), default=None,
                        help="diffusion sampler (default: the model's own, else ddim)")
    parser.add_argument("--fad", action="append", metavar="NAME=DIR",
                        help="FAD with a local embedder: vggish, panns, clap or encodec (repeatable; "
                             "clap=clap_sfx16k: the shipped CLAP)")
    parser.add_argument("--classifier", metavar="panns=DIR", help="KL and Inception Score with a local classifier")
    parser.add_argument("--clap", metavar="DIR", help="CLAP score with a local ClapModel folder (clap_sfx16k: the "
                                                      "shipped CLAP trained here)")
    parser.add_argument("--device", default=None, help="torch device for generation")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="inference dtype of the model under test (see tokenlm generate --dtype)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.set_defaults(func=run_eval)
    return parser


def run_retrieval(args: argparse.Namespace) -> int:
    """Embed the manifest's clips and captions with ``--clap`` and report retrieval (``tokenlm retrieval``)."""
    import json

    import numpy as np
    import torch

    from tokenlm.eval.embedders import load_embedder
    from tokenlm.eval.inputs import load_clip, read_entries
    from tokenlm.eval.retrieval import retrieval_report

    if args.threads:
        torch.set_num_threads(args.threads)
    clap = load_embedder("clap", args.clap)
    entries = read_entries(args.manifest)
    entries = entries[: args.limit] if args.limit else entries
    if len(entries) < 2:
        raise ValueError(f"retrieval needs at least 2 captioned clips; {args.manifest} gives {len(entries)}")
    captions = [entry["description"] for entry in entries]
    clips = [load_clip(entry["path"]) for entry in entries]
    audio = np.concatenate([frames.mean(0, keepdims=True) for frames in clap.embed_clips(clips)])  # [N, D]
    report = retrieval_report(clap.embed_texts(captions), audio, captions, [e["labels"] for e in entries])
    report.update(clap=str(args.clap), manifest=str(args.manifest))
    matched, strict = report["matched"], report["strict"]
    print(f"{report['clips']} clips: text->audio R@1 {matched['t2a_r@1']:.3f} R@10 {matched['t2a_r@10']:.3f} "
          f"(chance {matched['t2a_chance_r@10']:.3f}), audio->text R@1 {matched['a2t_r@1']:.3f} "
          f"R@10 {matched['a2t_r@10']:.3f}; strict pairs: text->audio R@10 {strict['t2a_r@10']:.3f}")
    print("mAP per attribute: " + ", ".join(f"{k} {v['map']:.2f} (chance {v['chance']:.2f})"
                                            for k, v in report["attributes"].items()))
    print(f"CLAP score: paired {report['paired_cosine']:.3f}, shuffled {report['shuffled_cosine']:.3f}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    return 0


def add_retrieval_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``retrieval`` on the ``tokenlm`` command's subparsers."""
    parser = commands.add_parser(
        "retrieval", help="text-audio retrieval (R@k, mAP per attribute) of a CLAP on a captioned manifest",
        epilog="example: tokenlm retrieval --clap runs/demo_clap/export --manifest data/synth_sfx16k_4s/"
               "test_heldout.jsonl --out retrieval.json",
    )
    parser.add_argument("--clap", required=True, metavar="DIR",
                        help="a local ClapModel + ClapProcessor folder (clap_sfx16k: the shipped CLAP trained here)")
    parser.add_argument("--manifest", required=True, help="JSONL manifest with path, description and labels")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.set_defaults(func=run_retrieval)
    return parser
