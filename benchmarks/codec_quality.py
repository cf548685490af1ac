"""Codec quality per bitrate: mel distance, SI-SNR and the codec ceiling (caption-attribute alignment of the
reconstructed held-out clips), plus sounds outside the synthetic families (espeak-ng speech, a chord on an organ-like
waveform, a plucked inharmonic tone), written out to listen to.

    .venv/bin/python benchmarks/codec_quality.py --codec runs/demo_codec/export
    .venv/bin/python benchmarks/codec_quality.py --codec runs/demo_codec --limit 100 --out codec_report  # newest ckpt
    .venv/bin/python benchmarks/codec_quality.py --quick   # the shipped codec on 2 fresh synthetic clips (seconds)

Prints Markdown tables (the ones in docs/codec.md) and writes ``report.json`` and the WAVs under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from tokenlm.audio import read_audio, write_audio
from tokenlm.codec_cli import _load_codec
from tokenlm.codecs.training.losses import mel_distance, si_snr
from tokenlm.eval.codec import _at_rate, evaluate_codec, format_report, round_trip


def cpu_name() -> str:
    """The CPU model name (speed figures are quoted with it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def speech(rate: int) -> np.ndarray | None:
    """A sentence spoken by espeak-ng (Debian's ``espeak-ng``), or None where it is not installed."""
    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), "the quick brown fox jumps over the lazy dog"], check=True)
        wav, source_rate = read_audio(path)
    return _at_rate(wav.mean(0).numpy(), source_rate, rate)


def organ_chord(rate: int, seconds: float = 2.0) -> np.ndarray:
    """C major (C4 E4 G4) on an organ-like waveform (drawbar harmonics 1, 2, 3, 4, 6, 8 at uneven levels): a
    timbre none of the synthetic families uses."""
    t = np.arange(int(seconds * rate)) / rate
    drawbars = {1: 1.0, 2: 0.7, 3: 0.5, 4: 0.35, 6: 0.25, 8: 0.2}
    out = np.zeros_like(t)
    for f0 in (261.63, 329.63, 392.0):
        for k, level in drawbars.items():
            out += level * np.sin(2 * np.pi * k * f0 * t)
    return (0.25 * out / np.abs(out).max()).astype(np.float32)


def inharmonic_pluck(rate: int, seconds: float = 2.0) -> np.ndarray:
    """A bell-like pluck at 220 Hz with stretched, inharmonic partials and a fast decay."""
    t = np.arange(int(seconds * rate)) / rate
    partials = [(1.0, 1.0), (2.76, 0.6), (5.4, 0.4), (8.93, 0.25)]
    out = sum(level * np.sin(2 * np.pi * 220 * ratio * t) * np.exp(-t * (2 + 2 * ratio)) for ratio, level in partials)
    return (0.4 * out / np.abs(out).max()).astype(np.float32)


def outside_sounds(codec, out_dir: Path | None) -> list[dict]:
    """SI-SNR and mel distance of the sounds outside the synthetic world, at every bandwidth."""
    from tokenlm.codecs.encodec import EncodecCodec

    rate = codec.sample_rate
    sounds = {"espeak-ng speech": speech(rate), "organ chord (C major)": organ_chord(rate),
              "inharmonic pluck": inharmonic_pluck(rate)}
    rows = []
    for name, wav in sounds.items():
        if wav is None:
            rows.append({"sound": name, "skipped": "espeak-ng is not installed (apt-get install espeak-ng)"})
            continue
        row = {"sound": name, "seconds": round(len(wav) / rate, 2)}
        for bandwidth in codec.model.config.target_bandwidths:
            coder = EncodecCodec(codec.model, float(bandwidth))
            recon = round_trip(coder, wav, rate)
            pair = torch.from_numpy(recon[None, None]), torch.from_numpy(wav[None, None].astype(np.float32))
            row[f"{bandwidth:g}"] = {"si_snr_db": round(float(si_snr(*pair)[0]), 2),
                                     "mel_distance": round(float(mel_distance(*pair, rate)[0]), 3)}
            if out_dir is not None:
                slug = name.split(" ")[0]
                write_audio(out_dir / "outside" / f"{slug}_{bandwidth:g}kbps.wav", torch.from_numpy(recon)[None], rate)
                write_audio(out_dir / "outside" / f"{slug}_original.wav", torch.from_numpy(wav)[None], rate)
        rows.append(row)
    return rows


def format_outside(rows: list[dict], bandwidths: list[float]) -> str:
    header = ["sound", *[f"{b:g} kbps SI-SNR dB / mel" for b in bandwidths]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['sound']} | {row['skipped']} |")
            continue
        cells = [f"{row[f'{b:g}']['si_snr_db']:.1f} / {row[f'{b:g}']['mel_distance']:.2f}" for b in bandwidths]
        lines.append(f"| {row['sound']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", help="an EnCodec folder, or a codec run (its newest checkpoint); "
                        "required unless --quick")
    parser.add_argument("--manifest", default="data/synth_sfx16k/test_heldout.jsonl",
                        help="held-out captioned clips (made by `tokenlm train recipe=demo_codec`)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="codec_report", help="folder for report.json and the WAVs")
    parser.add_argument("--quick", action="store_true", help="smoke run: the shipped codec (unless --codec) on 2 "
                        "clips of a small synthetic set written to a temporary folder, report there too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        with tempfile.TemporaryDirectory() as folder:
            run(args, quick_inputs(args, Path(folder)))
        return
    if args.codec is None:
        parser.error("--codec is required (or --quick)")
    run(args, args.manifest)


def quick_inputs(args: argparse.Namespace, folder: Path) -> str:
    """For ``--quick``: the shipped codec unless ``--codec``, a 12-clip synthetic set, 2 clips, output in ``folder``;
    returns the held-out manifest."""
    from tokenlm.common.assets import asset_path
    from tokenlm.data.synth import generate_dataset

    args.codec = args.codec or str(asset_path("codec_sfx16k"))
    args.limit, args.out = 2, str(folder / "report")
    return str(generate_dataset(folder / "synth", 12, 0, "sfx16k", duration=1.0)["test_heldout"])


def run(args: argparse.Namespace, manifest: str) -> None:
    """Score the codec on ``manifest`` and on the outside sounds; print the tables, write the report."""
    codec = _load_codec(args.codec)
    out = Path(args.out)
    report = evaluate_codec(codec, manifest, limit=args.limit, out_dir=out / "heldout")
    report["outside"] = outside_sounds(codec, out)
    report["cpu"] = cpu_name()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"codec ceiling on {report['clips']} held-out clips ({report['manifest']}):\n")
    print(format_report(report))
    print("\nsounds outside the synthetic families:\n")
    print(format_outside(report["outside"], [float(b) for b in codec.model.config.target_bandwidths]))
    speeds = ", ".join(f"{bw} kbps {band['seconds_per_second']:.0f}x" for bw, band in report["bandwidths"].items())
    print(f"\nencode + decode speed (audio seconds per second, {args.threads} threads, {report['cpu']}): {speeds}")


if __name__ == "__main__":
    main()
