"""Offline evaluation: caption-attribute detectors, text-audio alignment calibrated between chance and the
detectors' ceiling, a hand-crafted Fréchet quality score, and the standard metrics (FAD, KL, IS, CLAP score)
with embedders loaded from local weights. See ``docs/eval.md``.

The names below are imported on first use, so ``tokenlm --help`` (which reads ``tokenlm.eval.cli``) stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenlm.common.lazy import lazy_exports

if TYPE_CHECKING:
    from tokenlm.eval.alignment import alignment_report
    from tokenlm.eval.analysis import Analysis, analyze
    from tokenlm.eval.captions import parse_caption
    from tokenlm.eval.frechet import frechet_distance, quality_score
    from tokenlm.eval.report import write_report
    from tokenlm.eval.suite import run_suite

__all__ = ["Analysis", "alignment_report", "analyze", "frechet_distance", "parse_caption", "quality_score",
           "run_suite", "write_report"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "alignment_report": "tokenlm.eval.alignment", "Analysis": "tokenlm.eval.analysis",
    "analyze": "tokenlm.eval.analysis", "parse_caption": "tokenlm.eval.captions",
    "frechet_distance": "tokenlm.eval.frechet", "quality_score": "tokenlm.eval.frechet",
    "write_report": "tokenlm.eval.report", "run_suite": "tokenlm.eval.suite",
})
