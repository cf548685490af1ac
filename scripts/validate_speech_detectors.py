"""Measure the speech detectors of ``tokenlm.eval.speech`` on real and synthetic audio and print a markdown table.

- speech present: every Asterisk prompt (Allison Smith, real voice, ``asterisk-core-sounds-en-*``) and held-out
  espeak-ng renders (``tokenlm data speech``'s ``test_heldout`` split);
- speech absent: LMMS instrument samples, Hydrogen drum hits and synthetic lab clips (``tokenlm.data.synth``);
- voice pitch ("high" / "low" at 165 Hz): the held-out espeak-ng renders against their labels, and the Asterisk
  prompts (a female voice: "high").

Usage::

    python scripts/validate_speech_detectors.py [--espeak 80] [--hydrogen 0 (all)] [--synth 10]

A collection whose Debian package is missing is left out of the table (with a note).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np


def _load(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(path, dtype="float32", always_2d=True)  # [N, C]
    return data.T, rate  # [C, N]


def _accuracy(clips: Iterable[tuple[np.ndarray, int, object]], check: Callable[[np.ndarray, int, object], bool]
              ) -> tuple[float, int]:
    hits = [check(wav, rate, truth) for wav, rate, truth in clips]
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--espeak", type=int, default=80, help="held-out espeak-ng renders (default 80)")
    parser.add_argument("--hydrogen", type=int, default=0, help="Hydrogen hits, evenly spread (0 = all)")
    parser.add_argument("--synth", type=int, default=10, help="synthetic clips per family (default 10)")
    args = parser.parse_args(argv)

    from tokenlm.data.sources import get_source
    from tokenlm.data.sources.recorded import asterisk_voice_clips, hydrogen_hits, lmms_instrument_samples
    from tokenlm.data.synth import make_clip
    from tokenlm.eval.speech import speech_presence, voice_pitch

    start = time.perf_counter()
    rows: list[tuple[str, str, float, int]] = []
    notes: list[str] = []
    present = lambda wav, rate, truth: speech_presence(wav, rate)[0] == truth  # noqa: E731

    speech = get_source("speech")
    try:
        speech.check({})
        plans, _ = speech.plan(max(3, args.espeak * 10), 0, {})
        renders = [speech.render(spec, {}) for spec in plans["test_heldout"][: args.espeak]]
        renders = [clip for clip in renders if hasattr(clip, "wav")]
        rows.append(("speech present", "espeak-ng renders (held-out split)",
                     *_accuracy(((c.wav, c.sample_rate, True) for c in renders), present)))
        rows.append(("voice pitch high/low", "espeak-ng renders (held-out split), against the label",
                     *_accuracy(((c.wav, c.sample_rate, c.labels["voice_pitch"]) for c in renders),
                                lambda wav, rate, truth: voice_pitch(wav, rate)[1] == truth)))
    except Exception as err:  # noqa: BLE001 - report what is missing and go on
        notes.append(f"espeak-ng renders left out: {err}")

    asterisk = asterisk_voice_clips()
    if asterisk:
        loaded = [(*_load(path), True) for path, _ in asterisk]
        rows.append(("speech present", "Asterisk prompts (real female voice, 8 kHz)", *_accuracy(loaded, present)))
        rows.append(("voice pitch high/low", "Asterisk prompts (female: high)",
                     *_accuracy(((w, r, "high") for w, r, _ in loaded),
                                lambda wav, rate, truth: voice_pitch(wav, rate)[1] == truth)))
    else:
        notes.append("Asterisk prompts left out: apt-get install asterisk-core-sounds-en-wav")

    lmms = lmms_instrument_samples()
    if lmms:
        rows.append(("speech absent", "LMMS instrument samples",
                     *_accuracy(((*_load(path), False) for path, _, _ in lmms), present)))
    else:
        notes.append("LMMS samples left out: apt-get install lmms-common")

    hits = hydrogen_hits()
    if hits:
        if args.hydrogen and args.hydrogen < len(hits):
            hits = [hits[i] for i in np.linspace(0, len(hits) - 1, args.hydrogen).round().astype(int)]
        rows.append(("speech absent", "Hydrogen drum hits",
                     *_accuracy(((*_load(path), False) for path, _, _ in hits), present)))
    else:
        notes.append("Hydrogen drum hits left out: apt-get install hydrogen-drumkits")

    synthetic = []
    for preset, families in (("sfx16k", ("tone", "noise", "noise_band", "bursts", "clicks", "sweep", "sequence")),
                             ("music32k", ("chord", "melody", "drums"))):
        for family in families:
            for index in range(args.synth):
                wav, rate, _, _ = make_clip(np.random.default_rng([31, index]), preset, family=family)
                synthetic.append((wav, rate, False))
    rows.append(("speech absent", "synthetic lab clips (tones, noise, clicks, sweeps, chords, drums, ...)",
                 *_accuracy(synthetic, present)))

    print("| detector | clips | accuracy | n |")
    print("| --- | --- | --- | --- |")
    for detector, clips, accuracy, n in rows:
        print(f"| {detector} | {clips} | {accuracy:.3f} | {n} |")
    for note in notes:
        print(f"\nnote: {note}")
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
