"""Sound events: segmentation by level (count), event classes (order), decay shape and drum hits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokenlm.eval.dsp import ANALYSIS_RATE, HOP

FRAME_S = HOP / ANALYSIS_RATE
MIN_GAP_S = 0.05
MIN_EVENT_S = 0.03


@dataclass
class Segment:
    """One event: frames ``[start, stop)`` on the 10 ms grid and its peak level in dBFS."""

    start: int
    stop: int
    peak_db: float

    @property
    def seconds(self) -> float:
        return (self.stop - self.start) * FRAME_S


def segment_events(level_db: torch.Tensor, below_peak_db: float = 30.0, above_floor_db: float = 12.0) -> list[Segment]:
    """Runs of frames louder than ``max(peak - below_peak_db, min(floor + above_floor_db, peak - 10))`` dB
    (floor = 10th percentile, so a sound filling the clip is one event), gaps shorter than 50 ms closed,
    events shorter than 30 ms dropped."""
    peak = float(level_db.max())
    floor = float(torch.quantile(level_db, 0.1))
    threshold = max(peak - below_peak_db, min(floor + above_floor_db, peak - 10.0))
    active = (level_db > threshold).tolist()
    runs: list[list[int]] = []
    for index, on in enumerate(active):
        if on:
            if runs and index - runs[-1][1] <= int(MIN_GAP_S / FRAME_S):
                runs[-1][1] = index + 1
            else:
                runs.append([index, index + 1])
    return [Segment(a, b, float(level_db[a:b].max())) for a, b in runs if (b - a) * FRAME_S >= MIN_EVENT_S]


def classify_event(segment: Segment, f0: torch.Tensor, voiced: torch.Tensor, centroid: torch.Tensor) -> str:
    """``"beep"`` (steady pitch), ``"chirp"`` (pitch rising fast), ``"thud"`` (low: pitch < 200 Hz or centroid
    < 500 Hz) or ``"noise"`` (unpitched, bright)."""
    frames = slice(segment.start, segment.stop)
    seg_voiced = voiced[frames]
    if float(seg_voiced.float().mean()) >= 0.5:
        pitches = f0[frames][seg_voiced]
        if float(pitches.median()) < 200.0:
            return "thud"
        slope = pitch_slope(pitches, torch.nonzero(seg_voiced).flatten().float() * FRAME_S)
        return "chirp" if slope > 1.5 else "beep"
    return "thud" if float(centroid[frames].median()) < 500.0 else "noise"


def pitch_slope(f0: torch.Tensor, times: torch.Tensor) -> float:
    """Least-squares slope of log2(f0) over time, in octaves per second (0 with fewer than 3 points)."""
    if f0.numel() < 3:
        return 0.0
    x = times.double() - times.double().mean()
    y = torch.log2(f0.double())
    denominator = float((x**2).sum())
    return float((x * (y - y.mean())).sum() / denominator) if denominator > 0 else 0.0


def decay_db(level_db: torch.Tensor, range_db: float = 40.0) -> float:
    """How far (dB) the median level after the loudest frame lies below it, over the frames that follow it
    while they stay within ``range_db`` of it: ~0 for a sustained sound, > 6 for a plucked (decaying) one."""
    peak_index = int(level_db.argmax())
    after = level_db[peak_index:]
    below = torch.nonzero(after < float(after[0]) - range_db).flatten()
    region = after[: int(below[0])] if below.numel() else after
    return float(region[0] - region.median())


def band_rise_db(band_db: torch.Tensor, onsets: torch.Tensor, before: int = 3, after: int = 4) -> torch.Tensor:
    """``[K]`` rise of a band level at each onset: max over ``after`` frames from the onset minus the mean of
    the ``before`` frames preceding it."""
    rises = []
    count = band_db.numel()
    for onset in onsets.round().long().tolist():
        post = band_db[max(0, onset - 1):min(count, onset + after)]
        pre = band_db[max(0, onset - 1 - before):max(1, onset - 1)]
        rises.append(float(post.max() - pre.mean()) if post.numel() and pre.numel() else 0.0)
    return torch.tensor(rises)
