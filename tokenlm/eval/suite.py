"""The evaluation suite: detectors on generated and reference clips, alignment (with chance and ceiling),
the hand-crafted Fréchet quality score, and, when weights are given, FAD / KL / IS / CLAP score.

Example::

    report = run_suite(generated=[(wav, 16000), ...], captions=["a sine tone at A4", ...])
    report["alignment"]["overall"]["calibrated"]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tokenlm.data.synth.families import FAMILIES
from tokenlm.eval.alignment import OVERALL, alignment_report, score_clips, summarize
from tokenlm.eval.analysis import Analysis, analyze
from tokenlm.eval.attributes import EXTENDED_FAMILIES
from tokenlm.eval.captions import parse_caption
from tokenlm.eval.frechet import quality_score
from tokenlm.eval.metrics import (
    clap_score,
    clap_score_shuffled,
    frechet_audio_distance,
    inception_score,
    kl_divergences,
)

if TYPE_CHECKING:
    from tokenlm.eval.embedders import AudioClassifier, AudioEmbedder
    from tokenlm.eval.embedders.clap import ClapEmbedder

Clip = tuple[np.ndarray | torch.Tensor, int]
REFERENCE_RATE = 16000


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: the detectors' many small ops run several times faster
    than with intra-op threads, which mostly contend."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def analyze_clips(clips: Sequence[Clip], extended: bool = False) -> tuple[list[Analysis], float]:
    """Analyses of ``(wav, sample_rate)`` clips and the mean seconds per clip (``extended``: with the music,
    instrument, drums and speech detectors)."""
    start = time.perf_counter()
    with one_torch_thread():
        analyses = [analyze(wav, rate, extended) for wav, rate in clips]
    return analyses, (time.perf_counter() - start) / max(1, len(clips))


def reference_clips(labels: Sequence[dict[str, Any]], durations: Sequence[float], seed: int = 0,
                    sample_rate: int = REFERENCE_RATE) -> list[Clip | None]:
    """Synthetic reference audio for each label dict (missing attributes drawn at random), or None where the
    labels name no known family. Used when no reference recordings are given."""
    clips: list[Clip | None] = []
    for index, (target, duration) in enumerate(zip(labels, durations, strict=True)):
        family = FAMILIES.get(target.get("family", ""))
        if family is None:
            clips.append(None)
            continue
        rng = np.random.default_rng([seed, 1_000_003, index])
        seconds = min(max(float(duration), family.min_duration), 30.0)
        given = {key: value for key, value in target.items() if key != "family"}
        full = family.sample(rng, seconds, given)
        clips.append((family.render(full, rng, sample_rate, seconds).astype(np.float32), sample_rate))
    return clips


def _quality(generated: Sequence[Analysis], reference: Sequence[Analysis], set_size: int | None,
             seed: int) -> dict[str, Any]:
    gen = [a.features for a in generated if a.features is not None]
    ref = [a.features for a in reference if a.features is not None]
    if len(gen) < 2 or len(ref) < 2:
        return {"frechet_distance": None, "reason": f"needs >= 2 usable clips per set, got {len(gen)} and {len(ref)}"}
    size = min(set_size or len(gen), len(gen), len(ref))
    result: dict[str, Any] = quality_score(np.stack(gen), np.stack(ref), size, seed)
    result["excluded_generated"] = len(generated) - len(gen)
    return result


def run_suite(
    generated: Sequence[Clip],
    captions: Sequence[str],
    labels: Sequence[dict[str, Any]] | None = None,
    reference: Sequence[Clip] | None = None,
    *,
    set_size: int | None = None,
    shuffles: int = 10,
    seed: int = 0,
    embedders: Mapping[str, AudioEmbedder] | None = None,
    classifier: AudioClassifier | None = None,
    clap: ClapEmbedder | None = None,
) -> dict[str, Any]:
    """Evaluate generated clips against their captions.

    Args:
        generated: ``(wav, sample_rate)`` per caption.
        captions: the text each clip was generated from.
        labels: attribute labels per caption (default: parsed from the captions).
        reference: reference clips for the same captions (default: synthesised from the labels); the
            detectors' accuracy on them is the ceiling, and they are the quality score's reference set.
        set_size: clips per set for the Fréchet distances (default: the smaller set).
        shuffles: caption shuffles for the chance level.
        embedders: name -> embedder for FAD; ``classifier`` for KL / IS; ``clap`` for the CLAP score.
    Returns:
        the report dict (``summary``, ``alignment``, ``quality``, ``metrics``, ``clips``, ``timing``).
    """
    if len(generated) != len(captions) or len(generated) == 0:
        raise ValueError(f"need one generated clip per caption (and at least one), got {len(generated)} clips "
                         f"for {len(captions)} captions")
    timing: dict[str, float] = {}
    start = time.perf_counter()
    labels = [dict(item) for item in labels] if labels is not None else [parse_caption(c) for c in captions]
    if len(labels) != len(captions):
        raise ValueError(f"got {len(labels)} label dicts for {len(captions)} captions")
    durations = [np.shape(wav)[-1] / rate for wav, rate in generated]
    if reference is None:
        synthesised = reference_clips(labels, durations, seed)
        silent = (np.zeros(REFERENCE_RATE, np.float32), REFERENCE_RATE)
        reference = [clip if clip is not None else silent for clip in synthesised]
    if len(reference) != len(captions):
        raise ValueError(f"got {len(reference)} reference clips for {len(captions)} captions")
    timing["prepare_s"] = time.perf_counter() - start

    extended = any(target.get("family") in EXTENDED_FAMILIES for target in labels)
    gen_analyses, timing["analysis_per_clip_s"] = analyze_clips(generated, extended)
    ref_analyses, timing["reference_analysis_per_clip_s"] = analyze_clips(reference, extended)
    start = time.perf_counter()
    ceiling = summarize(score_clips(ref_analyses, labels))
    alignment = alignment_report(gen_analyses, labels, ceiling, shuffles, seed)
    quality = _quality(gen_analyses, ref_analyses, set_size, seed)
    timing["scores_s"] = time.perf_counter() - start

    start = time.perf_counter()
    metrics = standard_metrics(generated, reference, captions, embedders, classifier, clap)
    timing["standard_metrics_s"] = time.perf_counter() - start

    clips = []
    for index, (caption, target, analysis) in enumerate(zip(captions, labels, gen_analyses, strict=True)):
        clips.append({"index": index, "caption": caption, "labels": target, "duration_s": round(durations[index], 3),
                      "problems": analysis.problems, "detections": analysis.detections(),
                      "checks": alignment["clips"][index]})
    overall = alignment["attributes"].get(OVERALL, {})
    summary = {"clips": len(captions), "unusable_clips": sum(1 for a in gen_analyses if a.problems),
               "alignment": overall.get("score"), "alignment_calibrated": overall.get("calibrated"),
               "chance": overall.get("chance"), "ceiling": overall.get("ceiling"),
               "frechet_distance": quality.get("frechet_distance")}
    return {"summary": summary, "alignment": alignment["attributes"], "quality": quality, "metrics": metrics,
            "clips": clips, "timing": timing}


def standard_metrics(
    generated: Sequence[Clip],
    reference: Sequence[Clip],
    captions: Sequence[str],
    embedders: Mapping[str, AudioEmbedder] | None = None,
    classifier: AudioClassifier | None = None,
    clap: ClapEmbedder | None = None,
) -> dict[str, Any]:
    """FAD per embedder, KL (both directions) and IS from the classifier, CLAP score (cosine, not x100)."""
    metrics: dict[str, Any] = {}
    usable = [i for i, (wav, _) in enumerate(generated) if np.isfinite(np.asarray(wav)).all() and np.size(wav) > 0]
    gen = [generated[i] for i in usable]
    for name, embedder in (embedders or {}).items():
        gen_emb, ref_emb = embedder.embed_clips(gen), embedder.embed_clips(reference)
        pooling = "frames" if sum(len(e) for e in gen_emb) >= 2 and sum(len(e) for e in ref_emb) >= 2 else None
        metrics[f"fad_{name}"] = frechet_audio_distance(gen_emb, ref_emb, pooling) if pooling else None
    if classifier is not None:
        gen_logits = classifier.classify_clips(gen)
        ref_logits = classifier.classify_clips([reference[i] for i in usable])
        metrics.update(kl_divergences(gen_logits, ref_logits))
        metrics["inception_score"] = inception_score(gen_logits)
    if clap is not None:
        audio = np.concatenate(clap.embed_clips(gen))
        texts = clap.embed_texts([captions[i] for i in usable])
        metrics["clap_score"] = clap_score(texts, audio)
        metrics["clap_score_shuffled"] = clap_score_shuffled(texts, audio) if len(usable) > 1 else None
    return metrics
