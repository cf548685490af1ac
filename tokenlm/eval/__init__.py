"""Offline evaluation: caption-attribute detectors, text-audio alignment calibrated between chance and the
detectors' ceiling, a hand-crafted Fréchet quality score, and the standard metrics (FAD, KL, IS, CLAP score)
with embedders loaded from local weights. See ``docs/eval.md``."""

from tokenlm.eval.alignment import alignment_report
from tokenlm.eval.analysis import Analysis, analyze
from tokenlm.eval.captions import parse_caption
from tokenlm.eval.frechet import frechet_distance, quality_score
from tokenlm.eval.report import write_report
from tokenlm.eval.suite import run_suite

__all__ = ["Analysis", "alignment_report", "analyze", "frechet_distance", "parse_caption", "quality_score",
           "run_suite", "write_report"]
