"""Text-audio retrieval of a CLAP on a captioned manifest: R@k both ways and mean average precision per attribute.

The synthetic captions repeat (89 held-out clips are "three short beeps" in some wording), so a clip is *relevant*
to a caption when it matches everything the caption states (:func:`tokenlm.eval.captions.parse_caption`): the
same family, categorical labels equal, pitch within 50 cents, tempo within 4 %, sweep ends within 10 %. A clip
always matches its own caption. The strict protocol (only the paired clip counts) is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tokenlm.eval.attributes import PITCH_TOLERANCE_CENTS, TEMPO_TOLERANCE

#: numeric labels and how far apart two values may be and still match: ("cents", c) or ("relative", r)
NUMERIC_TOLERANCES: dict[str, tuple[str, float]] = {
    "pitch_hz": ("cents", PITCH_TOLERANCE_CENTS),
    "tempo_bpm": ("relative", TEMPO_TOLERANCE),
    "low_hz": ("relative", 0.1),
    "high_hz": ("relative", 0.1),
}
#: labels that restate another (a note name restates pitch_hz)
REDUNDANT_LABELS = ("note",)
KS = (1, 5, 10)


def label_matches(key: str, stated: Any, actual: Any) -> bool:
    """Whether a clip's label ``actual`` satisfies the caption's ``stated`` value of ``key``."""
    if actual is None:
        return False
    if key in NUMERIC_TOLERANCES:
        kind, tolerance = NUMERIC_TOLERANCES[key]
        stated, actual = float(stated), float(actual)
        if stated <= 0 or actual <= 0:
            return stated == actual
        if kind == "cents":
            return abs(1200 * math.log2(actual / stated)) <= tolerance
        return abs(actual - stated) <= tolerance * stated
    if isinstance(stated, (list, tuple)) or isinstance(actual, (list, tuple)):
        return list(stated) == list(actual) if isinstance(actual, (list, tuple)) else False
    return stated == actual


def stated_labels(caption: str) -> dict[str, Any]:
    """What ``caption`` states, as manifest-style labels (redundant restatements dropped)."""
    from tokenlm.eval.captions import parse_caption

    return {k: v for k, v in parse_caption(caption).items() if k not in REDUNDANT_LABELS and v is not None}


def relevance(captions: Sequence[str], labels: Sequence[dict[str, Any]]) -> np.ndarray:
    """``[N_text, N_audio]`` boolean: clip j matches everything caption i states; its own clip always does."""
    stated = [stated_labels(caption) for caption in captions]
    out = np.zeros((len(captions), len(labels)), dtype=bool)
    for i, wanted in enumerate(stated):
        for j, actual in enumerate(labels):
            out[i, j] = bool(wanted) and all(label_matches(k, v, actual.get(k)) for k, v in wanted.items())
    if len(captions) == len(labels):
        np.fill_diagonal(out, True)
    return out


def recall_at(similarity: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Fraction of rows (queries) with a relevant item among their ``k`` most similar columns."""
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # [Q, k]
    return float(np.take_along_axis(relevant, top, axis=1).any(1).mean())


def chance_recall(relevant_counts: np.ndarray, items: int, k: int) -> float:
    """Expected R@k of a random ranking of ``items`` for queries with ``relevant_counts`` relevant items each:
    1 - C(items - r, k) / C(items, k), averaged over the queries."""
    k = min(k, items)
    counts = np.asarray(relevant_counts, np.float64)
    miss = np.ones_like(counts)
    for i in range(k):
        miss *= np.clip((items - counts - i) / (items - i), 0.0, 1.0)
    return float((1 - miss).mean())


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one query: the mean of precision@rank over the ranks of its relevant items (nan when none)."""
    if not relevant.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def attribute_map(
    similarity: np.ndarray, captions: Sequence[str], labels: Sequence[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Per stated attribute (``waveform``, ``pitch_hz``, ``tempo_bpm``, ...): mAP of text->audio rankings where the
    relevant clips are those whose label of that attribute matches the caption's, over the captions stating it;
    ``chance`` is a random ranking's expected AP (close to the mean fraction of relevant clips)."""
    aps: dict[str, list[float]] = {}
    fractions: dict[str, list[float]] = {}
    for i, caption in enumerate(captions):
        for key, value in stated_labels(caption).items():
            if key == "family":
                continue
            relevant = np.array([label_matches(key, value, actual.get(key)) for actual in labels])
            aps.setdefault(key, []).append(average_precision(similarity[i], relevant))
            fractions.setdefault(key, []).append(float(relevant.mean()))
    return {key: {"map": float(np.nanmean(aps[key])), "queries": len(aps[key]),
                  "chance": float(np.mean(fractions[key]))} for key in sorted(aps)}


def retrieval_report(
    text_embeddings: np.ndarray, audio_embeddings: np.ndarray, captions: Sequence[str],
    labels: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Text->audio and audio->text R@1/5/10 (content-matched and strict), and per-attribute mAP.

    ``text_embeddings`` ``[N, D]`` and ``audio_embeddings`` ``[N, D]`` pair up row by row (caption i describes
    clip i); both are normalised here.
    """
    text = np.asarray(text_embeddings, np.float64)
    audio = np.asarray(audio_embeddings, np.float64)
    if text.ndim != 2 or text.shape != audio.shape or len(captions) != len(text) or len(labels) != len(text):
        raise ValueError(f"retrieval needs N paired rows: text {text.shape}, audio {audio.shape}, "
                         f"{len(captions)} captions, {len(labels)} label sets")
    text /= np.linalg.norm(text, axis=1, keepdims=True).clip(min=1e-12)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True).clip(min=1e-12)
    similarity = text @ audio.T  # [N_text, N_audio]
    relevant = relevance(captions, labels)
    strict = np.eye(len(text), dtype=bool)
    report: dict[str, Any] = {"clips": len(text), "relevant_per_caption": float(relevant.sum(1).mean())}
    for name, rel in (("matched", relevant), ("strict", strict)):
        report[name] = {
            **{f"t2a_r@{k}": recall_at(similarity, rel, k) for k in KS},
            **{f"a2t_r@{k}": recall_at(similarity.T, rel.T, k) for k in KS},
            "t2a_chance_r@10": chance_recall(rel.sum(1), len(text), 10),
        }
    families = [str(item.get("family", "")) for item in labels]
    report["t2a_r@10_by_family"] = {
        family: recall_at(similarity[rows], relevant[rows], 10)
        for family in sorted(set(families)) if (rows := [i for i, f in enumerate(families) if f == family])
    }
    report["attributes"] = attribute_map(similarity, captions, labels)
    report["map"] = float(np.mean([v["map"] for v in report["attributes"].values()]))
    report["paired_cosine"] = float(np.diag(similarity).mean())
    report["shuffled_cosine"] = float((similarity.sum() - np.trace(similarity)) / (len(text) * (len(text) - 1)))
    return report
