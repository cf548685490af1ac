"""``tokenlm detectors``: validate the music detectors on what they never saw, and write the table.

On a music set's held-out split (by default the TimGM6mb render, ``test_heldout_timgm``: melodies, combinations
and a SoundFont never used to train or tune anything):

- key and mode, exact;
- tempo within 4 % (octave errors count as wrong);
- drums present or not;
- instrument family, top-1: on solo clips the one family; on ensembles, one of the families playing;
- melody similarity: the AUC of a clip's similarity to its own melody against another clip's melody.

Example::

    report = validate_music("music/")                 # or: tokenlm detectors --music music/
    print(markdown_table(report))
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from tokenlm.eval.music import analyze_music, chroma_similarity, key_matches, melody_roll, tempo_matches


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a positive scores above a negative (ties count half): the Mann-Whitney AUC."""
    pos, neg = np.asarray(positives, dtype=np.float64), np.asarray(negatives, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auc needs at least one positive and one negative score")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def _score(hits: Sequence[bool]) -> dict[str, Any]:
    return {"accuracy": float(np.mean(hits)) if len(hits) else None, "n": len(hits)}


def validate_music(root: str | Path, split: str = "test_heldout_timgm", detector_path: str | Path | None = None,
                   limit: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Every music detector on one split of a music set (see the module docstring)."""
    from tokenlm.eval.instrument import InstrumentDetector

    root = Path(root)
    manifest = root / f"{split}.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: build a music set with `tokenlm data music`")
    records = [json.loads(line) for line in manifest.read_text().splitlines()][:limit]
    detector = InstrumentDetector.from_pretrained(detector_path)
    key_hits, tempo_hits, drum_hits, solo_hits, ensemble_hits = [], [], [], [], []
    per_family: dict[str, list[bool]] = {}
    chromas, melodies, misses = [], [], []
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        for record in records:
            labels = record["labels"]
            wav, rate = sf.read(root / record["path"], dtype="float32")
            music = analyze_music(wav.T if wav.ndim == 2 else wav, rate)
            found = detector.detect(wav.T if wav.ndim == 2 else wav, rate)
            key_hits.append(key_matches(labels["key"], music.key))
            tempo_hits.append(tempo_matches(labels["tempo_bpm"], music.tempo_bpm))
            drum_hits.append(found.drums == bool(labels["drums"]))
            families = labels["instrument_families"]
            hit = found.family in families
            if len(families) == 1:
                solo_hits.append(hit)
                per_family.setdefault(families[0], []).append(hit)
            else:
                ensemble_hits.append(hit)
            chromas.append(music.chroma)
            melodies.append(labels["melody_midi"])
            if len(misses) < 40 and not (key_hits[-1] and tempo_hits[-1] and drum_hits[-1] and hit):
                misses.append({"path": record["path"], "key": [labels["key"], music.key],
                               "tempo": [labels["tempo_bpm"], music.tempo_bpm and round(music.tempo_bpm, 1)],
                               "drums": [labels["drums"], round(found.drums_prob, 3)],
                               "family": [families, found.family]})
        rng = np.random.default_rng(seed)
        positives, negatives = [], []
        n = len(records)
        for i in range(n):
            positives.append(chroma_similarity(chromas[i], melody_roll(melodies[i], chromas[i].shape[1])))
            j = (i + 1 + int(rng.integers(n - 1))) % n if n > 1 else i
            negatives.append(chroma_similarity(chromas[i], melody_roll(melodies[j], chromas[i].shape[1])))
    finally:
        torch.set_num_threads(previous)
    return {
        "split": split, "clips": len(records), "seconds": round(time.perf_counter() - start, 1),
        "key_mode": _score(key_hits), "tempo_4pct": _score(tempo_hits), "drums": _score(drum_hits),
        "instrument_family_solo_top1": _score(solo_hits),
        "instrument_family_ensemble_top1_in_set": _score(ensemble_hits),
        "instrument_family_per_family": {f: _score(h) for f, h in sorted(per_family.items())},
        "families_evaluated": len(per_family),
        "melody_similarity": {"auc": auc(positives, negatives) if n > 1 else None,
                              "own_mean": float(np.mean(positives)), "other_mean": float(np.mean(negatives)),
                              "n": n},
        "misses": misses,
    }


def markdown_table(report: dict[str, Any]) -> str:
    """The headline rows of a :func:`validate_music` report as a markdown table."""
    rows = [("key and mode", report["key_mode"], "≥ 0.9"), ("tempo within 4 %", report["tempo_4pct"], "≥ 0.9"),
            ("drums present / absent", report["drums"], "≥ 0.95"),
            (f"instrument family, solo clips ({report['families_evaluated']} families)",
             report["instrument_family_solo_top1"], "≥ 0.8"),
            ("instrument family, ensembles (top-1 among those playing)",
             report["instrument_family_ensemble_top1_in_set"], "")]
    lines = ["| detector | accuracy | clips | target |", "| --- | --- | --- | --- |"]
    for name, score, target in rows:
        value = "n/a" if score["accuracy"] is None else f"{score['accuracy']:.3f}"
        lines.append(f"| {name} | {value} | {score['n']} | {target} |")
    melody = report["melody_similarity"]
    lines.append(f"| melody similarity, own vs other melody (AUC) | {melody['auc']:.3f} | {melody['n']} | ≥ 0.95 |")
    return "\n".join(lines) + "\n"


def _drum_loop(kit: dict[str, Any], rate: int, bpm: float = 110.0, seconds: float = 4.0) -> np.ndarray | None:
    """A kit playing a rock beat: kick on beats 1 and 3, snare on 2 and 4, closed hi-hat on the eighths, each from
    the kit's first sample of that instrument; None when the kit lacks one of the three."""
    from tokenlm.data.sources.recorded import drum_name, load

    wanted = {"kick": None, "snare": None, "hat": None}
    for instrument, files in kit["instruments"]:
        name = drum_name(instrument) or ""
        for role in wanted:
            if wanted[role] is None and role in name and "open" not in name:
                wanted[role] = files[0]
    if any(path is None for path in wanted.values()):
        return None
    hits = {role: load(path, rate) for role, path in wanted.items()}
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    beat = 60.0 / bpm
    pattern = [("kick", 0), ("snare", 1), ("kick", 2), ("snare", 3)] + [("hat", h / 2) for h in range(8)]
    for bar in range(int(seconds / (4 * beat)) + 1):
        for role, position in pattern:
            start = int((bar * 4 + position) * beat * rate)
            if start >= out.size:
                continue
            sample = hits[role][: out.size - start] * (0.4 if role == "hat" else 0.8)
            out[start:start + sample.size] += sample
    return out / max(1.0, float(np.abs(out).max()))


def validate_recordings(detector_path: str | Path | None = None, limit: int | None = None) -> dict[str, Any]:
    """The detectors on real recordings from Debian packages (none of them used in training or tuning):

    - drums: each Hydrogen kit playing a beat made of its own kick, snare and hi-hat samples (drums expected), and
      the LMMS instrument samples (no drums expected);
    - instrument family: top-1 on the LMMS instrument samples named after an instrument;
    - speech: the Asterisk prompts (a real voice, 8 kHz: speech expected) against the LMMS instruments and the
      Hydrogen hits (no speech expected).
    """
    from tokenlm.data.sources.music.instruments import MELODY_FAMILIES
    from tokenlm.data.sources.recorded import (
        asterisk_voice_clips,
        drum_kits,
        hydrogen_hits,
        lmms_instrument_samples,
        load,
    )
    from tokenlm.eval.instrument import InstrumentDetector
    from tokenlm.eval.speech import analyze_speech

    rate = 16000
    detector = InstrumentDetector.from_pretrained(detector_path)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    report: dict[str, Any] = {}
    try:
        loops = [(kit["kit"], _drum_loop(kit, rate)) for kit in drum_kits()]
        loop_hits = {name: detector.detect(wav, rate).drums for name, wav in loops if wav is not None}
        instruments = [(path, name, family) for path, name, family in lmms_instrument_samples()
                       if family in MELODY_FAMILIES][:limit]
        family_hits, drum_free, speech_free, misses = [], [], [], []
        for path, name, family in instruments:
            wav = load(path, rate)
            found = detector.detect(wav, rate)
            family_hits.append(found.family == family)
            drum_free.append(not found.drums)
            speech_free.append(not analyze_speech(wav, rate).present)
            if found.family != family:
                misses.append({"file": Path(path).name, "name": name, "expected": family, "detected": found.family})
        hits = hydrogen_hits()[:limit]
        speech_free_hits = [not analyze_speech(load(path, rate), rate).present for path, _, _ in hits]
        voices = asterisk_voice_clips()[:limit]
        voice_hits = []
        for path, _ in voices:
            wav, voice_rate = sf.read(path, dtype="float32")
            voice_hits.append(analyze_speech(wav, voice_rate).present)
    finally:
        torch.set_num_threads(previous)
    report["drums_hydrogen_kit_beats"] = {**_score(list(loop_hits.values())), "kits": loop_hits}
    report["no_drums_lmms_instruments"] = _score(drum_free)
    report["instrument_family_lmms"] = {**_score(family_hits), "misses": misses}
    report["speech_asterisk_voice"] = _score(voice_hits)
    report["no_speech_lmms_instruments"] = _score(speech_free)
    report["no_speech_hydrogen_hits"] = _score(speech_free_hits)
    return report


def recordings_table(report: dict[str, Any]) -> str:
    """A :func:`validate_recordings` report as a markdown table."""
    rows = [("drums: Hydrogen kits playing a beat (drums expected)", "drums_hydrogen_kit_beats"),
            ("drums: LMMS instrument samples (none expected)", "no_drums_lmms_instruments"),
            ("instrument family: LMMS instrument samples, top-1", "instrument_family_lmms"),
            ("speech: Asterisk prompts, a real voice at 8 kHz (speech expected)", "speech_asterisk_voice"),
            ("speech: LMMS instrument samples (none expected)", "no_speech_lmms_instruments"),
            ("speech: Hydrogen drum hits (none expected)", "no_speech_hydrogen_hits")]
    lines = ["| real recordings | accuracy | clips |", "| --- | --- | --- |"]
    for name, key in rows:
        score = report[key]
        value = "n/a" if score["accuracy"] is None else f"{score['accuracy']:.3f}"
        lines.append(f"| {name} | {value} | {score['n']} |")
    return "\n".join(lines) + "\n"
