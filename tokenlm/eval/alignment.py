"""Text-audio alignment: the fraction of caption attributes the detectors find in the audio, per attribute
and overall, calibrated between chance (shuffled captions) and the detectors' ceiling (the generator's own
clips): ``calibrated = (score - chance) / (ceiling - chance)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tokenlm.eval.analysis import Analysis
from tokenlm.eval.attributes import CheckResult, check_clip

OVERALL = "overall"
#: below this gap between ceiling and chance a calibrated score is not meaningful (reported as None)
MIN_CALIBRATION_RANGE = 0.05


def score_clips(analyses: Sequence[Analysis], labels: Sequence[dict[str, Any]]) -> list[list[CheckResult]]:
    """Checks of every clip: ``labels[i]`` against ``analyses[i]``."""
    if len(analyses) != len(labels):
        raise ValueError(f"got {len(analyses)} analyses but {len(labels)} label dicts; they must pair up")
    return [check_clip(target, analysis) for analysis, target in zip(analyses, labels, strict=True)]


def summarize(results: Sequence[Sequence[CheckResult]]) -> dict[str, dict[str, float]]:
    """``{attribute: {"score", "matched", "n"}}`` plus ``"overall"`` (every check of every clip counted once)."""
    matched: dict[str, int] = {}
    totals: dict[str, int] = {}
    for clip in results:
        for result in clip:
            totals[result.attribute] = totals.get(result.attribute, 0) + 1
            matched[result.attribute] = matched.get(result.attribute, 0) + int(result.matched)
    out = {name: {"score": matched[name] / totals[name], "matched": matched[name], "n": totals[name]}
           for name in sorted(totals)}
    n = sum(totals.values())
    hits = sum(matched.values())
    out[OVERALL] = {"score": hits / n if n else float("nan"), "matched": hits, "n": n}
    return out


def chance_scores(analyses: Sequence[Analysis], labels: Sequence[dict[str, Any]], shuffles: int = 10,
                  seed: int = 0) -> dict[str, float]:
    """Mean score per attribute (and overall) when each clip is checked against another clip's labels,
    over ``shuffles`` random derangements-or-permutations of the captions."""
    if len(analyses) < 2:
        return {}
    rng = np.random.default_rng(seed)
    sums: dict[str, list[float]] = {}
    for _ in range(shuffles):
        order = rng.permutation(len(labels))
        summary = summarize(score_clips(analyses, [labels[int(i)] for i in order]))
        for name, values in summary.items():
            sums.setdefault(name, []).append(values["score"])
    return {name: float(np.mean(values)) for name, values in sums.items()}


def calibrate(score: float, chance: float | None, ceiling: float | None) -> float | None:
    """``(score - chance) / (ceiling - chance)``, or None when either is unknown or they are too close."""
    if chance is None or ceiling is None or not np.isfinite(score) or ceiling - chance < MIN_CALIBRATION_RANGE:
        return None
    return float((score - chance) / (ceiling - chance))


def alignment_report(
    analyses: Sequence[Analysis],
    labels: Sequence[dict[str, Any]],
    ceiling: dict[str, dict[str, float]] | None = None,
    shuffles: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-attribute and overall alignment with chance, ceiling and the calibrated score.

    Args:
        analyses: detector outputs of the generated clips.
        labels: the labels (or parsed captions) each clip was generated for.
        ceiling: :func:`summarize` of the detectors on reference clips of the same captions (None: unknown).
    Returns:
        ``{"attributes": {name: {"score", "matched", "n", "chance", "ceiling", "calibrated"}}, "clips": [...]}``
        with ``"overall"`` among the names, and per clip the list of check results.
    """
    results = score_clips(analyses, labels)
    summary = summarize(results)
    chance = chance_scores(analyses, labels, shuffles, seed)
    attributes = {}
    for name, values in summary.items():
        top = ceiling.get(name, {}).get("score") if ceiling else None
        attributes[name] = {**values, "chance": chance.get(name), "ceiling": top,
                            "calibrated": calibrate(values["score"], chance.get(name), top)}
    return {"attributes": attributes, "clips": [[r.to_dict() for r in clip] for clip in results]}
