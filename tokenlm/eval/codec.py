"""How good a codec is, per bitrate, on a manifest of captioned clips: multi-scale mel distance, SI-SNR and the
**codec ceiling**, the caption-attribute alignment (``tokenlm eval``'s detectors) of the reconstructed clips.

A codec that erases an attribute (pitch, noise colour, onsets) caps every model trained on its tokens, so the
ceiling is measured on codec round trips of the reference clips, per attribute family.

Example::

    report = evaluate_codec(EncodecCodec.from_pretrained("tokenlm/assets/codec"), "synth/test_heldout.jsonl")
    report["bandwidths"]["2.0"]["alignment"]["pitch"]["score"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.codecs.training.losses import mel_distance, si_snr


@torch.no_grad()
def round_trip(codec: EncodecCodec, wav: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
    """Encode and decode one mono clip ``[N]`` (resampled to the codec's rate if needed); ``[N']`` at the codec's
    rate, trimmed to the input's length."""
    signal = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if signal.dim() != 1:
        raise ValueError(f"round_trip takes a mono clip shaped [N], got shape {tuple(signal.shape)}")
    signal = torch.from_numpy(_at_rate(signal.numpy(), sample_rate, codec.sample_rate))
    out = codec.decode(codec.encode(signal[None, None]))  # [1, 1, T * hop]
    return out[0, 0, : signal.shape[-1]].cpu().numpy()


def _codebook_counts(codec: EncodecCodec) -> list[tuple[float, int]]:
    """(bandwidth, codebooks) of each of the codec's bandwidths."""
    quantizer = codec.model.quantizer
    return [(float(b), quantizer.get_num_quantizers_for_bandwidth(float(b)))
            for b in codec.model.config.target_bandwidths]


def evaluate_codec(
    codec: EncodecCodec | str | Path,
    manifest: str | Path,
    *,
    bandwidths: Sequence[float] | None = None,
    limit: int | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Reconstruct every clip of ``manifest`` at each bandwidth and score the reconstructions.

    Returns ``{"clips", "reference_alignment": {attribute: score}, "bandwidths": {bw: {"codebooks", "kbps",
    "mel_distance", "si_snr_db", "alignment": {attribute: {"score", "n", ...}}, "seconds_per_second"}}}``.
    The reference alignment is the detectors' own accuracy on the original clips (the best any codec can do).
    With ``out_dir`` the reconstructions are written as ``out_dir/<bandwidth>/<clip name>.wav``.
    """
    from tokenlm.audio import write_audio
    from tokenlm.eval.inputs import load_clip, read_entries
    from tokenlm.eval.suite import run_suite

    if not isinstance(codec, EncodecCodec):
        codec = EncodecCodec.from_pretrained(codec)
    entries = read_entries(manifest)[:limit] if limit else read_entries(manifest)
    if not entries:
        raise ValueError(f"manifest {str(manifest)!r} holds no clips")
    originals = [load_clip(entry["path"]) for entry in entries]  # (wav [N], rate)
    captions = [entry["description"] for entry in entries]
    labels = [entry["labels"] for entry in entries]
    available = _codebook_counts(codec)
    chosen = available if bandwidths is None else [pair for pair in available if pair[0] in set(map(float, bandwidths))]
    if not chosen:
        raise ValueError(f"none of the bandwidths {list(bandwidths or [])} is one of the codec's "
                         f"{[b for b, _ in available]}")
    report: dict[str, Any] = {"clips": len(entries), "manifest": str(manifest), "bandwidths": {}}
    for bandwidth, count in chosen:
        coder = EncodecCodec(codec.model, bandwidth)
        start = time.perf_counter()
        recons = [(round_trip(coder, wav, rate), coder.sample_rate) for wav, rate in originals]
        elapsed = time.perf_counter() - start
        audio_seconds = sum(len(wav) / rate for wav, rate in originals)
        snrs, mels = [], []
        for (wav, rate), (recon, _) in zip(originals, recons, strict=True):
            reference = _at_rate(wav, rate, coder.sample_rate)[: len(recon)]
            pair = torch.from_numpy(recon[None, None]), torch.from_numpy(reference[None, None])
            snrs.append(float(si_snr(*pair)[0]))
            mels.append(float(mel_distance(*pair, coder.sample_rate)[0]))
        suite = run_suite(recons, captions, labels, reference=originals, shuffles=1)
        alignment = {name: {k: v for k, v in values.items() if k in ("score", "n", "ceiling")}
                     for name, values in suite["alignment"].items()}
        report["bandwidths"][f"{bandwidth:g}"] = {
            "codebooks": count, "kbps": bandwidth, "mel_distance": float(np.mean(mels)),
            "si_snr_db": float(np.median(snrs)), "si_snr_mean_db": float(np.mean(snrs)),
            "alignment": alignment, "seconds_per_second": audio_seconds / elapsed,
            "frechet_distance": suite["quality"].get("frechet_distance"),
        }
        report.setdefault("reference_alignment",
                          {name: values.get("ceiling") for name, values in suite["alignment"].items()})
        if out_dir is not None:
            for entry, (recon, rate) in zip(entries, recons, strict=True):
                path = Path(out_dir) / f"{bandwidth:g}" / Path(entry["path"]).name
                write_audio(path, torch.from_numpy(recon)[None], rate, normalize="clip")
    return report


def _at_rate(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A mono clip ``[N]`` resampled from ``rate`` to ``target`` Hz."""
    from tokenlm.audio import convert_audio

    if rate == target:
        return np.asarray(wav, dtype=np.float32)
    return convert_audio(torch.from_numpy(np.asarray(wav, dtype=np.float32))[None], rate, target, 1)[0].numpy()


def format_report(report: dict[str, Any]) -> str:
    """A Markdown table of :func:`evaluate_codec`'s report: one row per bandwidth, one column per attribute."""
    bands = report["bandwidths"]
    attributes = sorted({name for band in bands.values() for name in band["alignment"] if name != "overall"})
    header = ["codebooks", "kbps", "mel dist.", "SI-SNR dB", "overall", *attributes]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    reference = report.get("reference_alignment", {})
    names = ["overall", *attributes]
    lines.append("| original clips | | | | " + " | ".join(_fmt(reference.get(n)) for n in names) + " |")
    for band in bands.values():
        scores = [_fmt(band["alignment"].get(n, {}).get("score")) for n in names]
        first = f"| {band['codebooks']} | {band['kbps']:g} | {band['mel_distance']:.3f} | {band['si_snr_db']:.1f} | "
        lines.append(first + " | ".join(scores) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
