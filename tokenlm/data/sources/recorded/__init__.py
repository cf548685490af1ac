"""``tokenlm data recorded``: recorded one-shot samples from Debian packages, captioned from their names.

Collections (any installed subset is used):

- ``hydrogen``: the Hydrogen drum kits of ``hydrogen-drumkits`` (``/usr/share/hydrogen/data/drumkits/*/``): every
  sample file of every instrument in each kit's ``drumkit.xml``, named by the instrument ("Closed HH" -> "closed
  hi-hat"); instruments whose names say nothing ("17", "Sample: beats_01-39.flac") are skipped and counted.
- ``lmms``: the LMMS sample library of ``lmms-common`` (``/usr/share/lmms/samples/``): drums, instruments, basses,
  string and pad samples, Latin, effects and misc, captioned from the file name ("hihat_closed02" -> "a closed
  hi-hat", "violin_pizzicato01" -> "a violin played pizzicato"). Loops (``beats/``, ``bassloops/``), single-cycle
  waveforms (``shapes/``, ``waveforms/``) and DrumSynth patches are left out: they do not caption well. Files
  soundfile cannot read (some ``.ogg`` files hold Vorbis in a WAV container) are skipped and counted, one
  ``"unreadable file: PATH"`` entry each in the build report's ``skipped``.
- ``freedesktop``: the freedesktop.org sound theme of ``sound-theme-freedesktop``
  (``/usr/share/sounds/freedesktop/stereo/*.oga``): alerts, chimes, phone tones, and eight spoken channel names.

A clip is one sample, resampled to ``--sample-rate``, mixed to mono, peak-normalised to a drawn level and placed
after a short drawn lead-in in a clip of exactly ``--duration`` seconds (a longer sample is cut, with a 20 ms fade,
and labelled ``truncated``). A short drum hit is sometimes played two to four times in a row at a drawn tempo, and
the caption says so ("a closed hi-hat hit three times at 120 BPM").

The set of files is small, so the splits hold out whole files by a fixed hash of the file's path inside its
collection (:func:`file_split`): about one file in ten is only in ``test_heldout``, one in ten only in ``valid``,
the rest only in ``train``. Clips repeat files (with other levels, lead-ins and hit counts) whenever ``n`` exceeds
the files of a split.

The package also lists real recordings for checking detectors: :func:`hydrogen_hits`,
:func:`lmms_instrument_samples` and :func:`asterisk_voice_clips` (each ``[]`` when its package is absent).

Modules: :mod:`~tokenlm.data.sources.recorded.names` (names -> captions, the held-out rule),
:mod:`~tokenlm.data.sources.recorded.catalogue` (the packages' folders, licences, drum kits and samples; the folders
are read there), :mod:`~tokenlm.data.sources.recorded.evaluation` (the real-recording evaluation sets), and this one
(the source: options, planning, rendering, captions, credits). Every public name is importable from here.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tokenlm.data.sources.base import (
    Clip,
    Credit,
    DataSource,
    MissingRequirement,
    Skipped,
    argparse_type,
    check_duration,
    check_sample_rate,
)
from tokenlm.data.sources.recorded.catalogue import (
    COLLECTIONS,
    FREEDESKTOP_COPYRIGHT,
    FREEDESKTOP_DIR,
    HYDROGEN_COPYRIGHT,
    HYDROGEN_DIR,
    LMMS_DIR,
    LMMS_LICENCE,
    NO_CAPTION,
    PACKAGES,
    UNLISTED,
    UNREADABLE,
    Sample,
    debian_licence,
    debian_stanzas,
    drum_kits,
    installed_collections,
    inventory,
    kit_licence,
)
from tokenlm.data.sources.recorded.evaluation import (
    ASTERISK_DIRS,
    asterisk_transcript,
    asterisk_voice_clips,
    hydrogen_hits,
    lmms_instrument_samples,
)
from tokenlm.data.sources.recorded.names import _LMMS as _LMMS  # the LMMS name table (tests read it)
from tokenlm.data.sources.recorded.names import LMMS_FOLDERS, drum_name, file_split, with_article

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ASTERISK_DIRS", "COLLECTIONS", "DEFAULT_DURATION", "DEFAULT_SAMPLE_RATE", "DURATION_LIMITS",
    "FREEDESKTOP_COPYRIGHT", "FREEDESKTOP_DIR", "HYDROGEN_COPYRIGHT", "HYDROGEN_DIR", "LMMS_DIR", "LMMS_FOLDERS",
    "LMMS_LICENCE", "NO_CAPTION", "PACKAGES", "SAMPLE_RATE_LIMITS", "UNLISTED", "UNREADABLE", "WEIGHTS",
    "RecordedSource", "Sample", "asterisk_transcript", "asterisk_voice_clips", "caption", "debian_licence",
    "debian_stanzas", "drum_kits", "drum_name", "file_split", "hydrogen_hits", "installed_collections", "inventory",
    "kit_licence", "lmms_instrument_samples", "load", "with_article",
]

#: how often a clip is drawn from each collection (renormalised over the collections used)
WEIGHTS = {"hydrogen": 0.4, "lmms": 0.45, "freedesktop": 0.15}
DEFAULT_DURATION = 4.0
DEFAULT_SAMPLE_RATE = 16000
DURATION_LIMITS = (0.5, 30.0)
SAMPLE_RATE_LIMITS = (8000, 48000)
VALID_FRACTION = HELDOUT_FRACTION = 0.1
PEAK_DB = (-20.0, -1.0)
LEAD_S = (0.0, 0.4)
FADE_S = 0.02
MAX_HIT_S = 1.0  # drum samples at most this long may be repeated
TEMPO_BPM = (80, 160)


# --- options -------------------------------------------------------------------------------------------------------
def _collections(value: Any) -> tuple[str, ...]:
    """``--collections`` checked: a comma-separated subset of :data:`COLLECTIONS`."""
    names = tuple(part.strip() for part in value.split(",")) if isinstance(value, str) else tuple(value)
    unknown = [name for name in names if name not in COLLECTIONS]
    if not names or unknown:
        raise ValueError(f"collections must be a comma-separated subset of {', '.join(COLLECTIONS)}, got {value!r}")
    return tuple(dict.fromkeys(names))


def _options(options: dict[str, Any]) -> tuple[float, int, tuple[str, ...] | None]:
    """(duration, sample rate, collections asked for or None for all installed) from ``options``, checked."""
    duration = options.get("duration")
    rate = options.get("sample_rate")
    collections = options.get("collections")
    return (check_duration(DEFAULT_DURATION if duration is None else duration, DURATION_LIMITS),
            check_sample_rate(DEFAULT_SAMPLE_RATE if rate is None else rate, SAMPLE_RATE_LIMITS),
            None if collections is None else _collections(collections))


def _used_collections(options: dict[str, Any]) -> list[str]:
    """The collections this build draws from (asked for ones must be installed)."""
    _, _, asked = _options(options)
    installed = installed_collections()
    if asked is None:
        if not installed:
            raise MissingRequirement("no recorded samples found: apt-get install hydrogen-drumkits lmms-common "
                                     "sound-theme-freedesktop")
        return installed
    missing = [name for name in asked if name not in installed]
    if missing:
        raise MissingRequirement(f"recorded collection {missing[0]!r} is not installed: apt-get install "
                                 f"{' '.join(PACKAGES[name] for name in missing)}")
    return list(asked)


# --- rendering -----------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def load(path: str, sample_rate: int) -> np.ndarray:
    """The file as mono float32 ``[N]`` at ``sample_rate``, peak 1, leading silence (below -60 dB) removed."""
    import numpy as np
    import soundfile as sf

    from tokenlm.data.sources.speech import resample

    data, rate = sf.read(path, dtype="float32", always_2d=True)  # [N, C]
    wav = resample(data.mean(axis=1), rate, sample_rate)  # [N']
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak <= 0.0:
        return np.zeros(0, dtype=np.float32)
    wav = wav / peak
    start = int(np.argmax(np.abs(wav) >= 1e-3))
    return np.ascontiguousarray(wav[start:], dtype=np.float32)


_HITS = {2: "twice", 3: "three times", 4: "four times"}
_COUNT = {2: "two", 3: "three", 4: "four"}


def caption(spec: dict[str, Any], rng: np.random.Generator) -> str:
    """A caption for a spec in one of several wordings; repeated hits say how many and at what tempo."""
    from tokenlm.data.synth.captions import pick

    phrase, name, hits = spec["phrase"], spec["name"], spec["hits"]
    if hits > 1:
        bpm = spec["tempo_bpm"]
        return pick(rng, (f"{phrase} hit {_HITS[hits]} at {bpm} BPM",
                          f"{_COUNT[hits]} {name} hits in a row at {bpm} BPM",
                          f"{phrase} played {_HITS[hits]}, {bpm} beats per minute",
                          f"{_COUNT[hits]} recorded {name} hits at {bpm} BPM"))
    if spec["drums"]:
        return pick(rng, (phrase, f"a single {name} hit", f"{phrase} hit once", f"a recorded {name}",
                          f"the sound of {phrase}", f"one {name} hit"))
    if spec["category"] == "speech":
        return pick(rng, (phrase, f"a recording of {phrase}", f"speech: {phrase}"))
    return pick(rng, (phrase, f"the sound of {phrase}", f"a recording of {phrase}", f"{phrase}, recorded",
                      f"a sample of {phrase}"))


class RecordedSource(DataSource):
    """Recorded samples from Debian packages (see the module docstring)."""

    name = "recorded"
    help = "recorded drum hits, instrument samples and alerts from Debian packages (Hydrogen kits, LMMS, freedesktop)"
    example = "tokenlm data recorded --n 500 --out recorded/ --collections hydrogen,lmms"

    def add_arguments(self, parser: Any) -> None:
        """``--duration``, ``--sample-rate`` and ``--collections``."""
        parser.add_argument("--duration", type=argparse_type(check_duration, DURATION_LIMITS),
                            default=DEFAULT_DURATION,
                            help=f"clip length in seconds (default {DEFAULT_DURATION:g})")
        parser.add_argument("--sample-rate", type=argparse_type(check_sample_rate, SAMPLE_RATE_LIMITS),
                            default=DEFAULT_SAMPLE_RATE,
                            help=f"output sample rate in Hz (default {DEFAULT_SAMPLE_RATE})")
        parser.add_argument("--collections", type=argparse_type(_collections), default=None,
                            help=f"comma-separated subset of {','.join(COLLECTIONS)} (default: every installed one)")

    def check(self, options: dict[str, Any]) -> None:
        """At least one collection (every asked-for one) must be installed; the options must be valid."""
        _used_collections(options)

    def plan(self, n: int, seed: int, options: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], Counter]:
        """Every clip's file, level, lead-in and hits, drawn from ``seed``; unusable files are counted."""
        import numpy as np

        from tokenlm.data.synth.dataset import split_sizes

        duration, _, _ = _options(options)
        collections = _used_collections(options)
        skipped: Counter = Counter()
        pools: dict[str, dict[str, list[Sample]]] = {split: {} for split in self.splits}
        for collection in collections:
            samples, left_out = inventory(collection)
            for reason, path in left_out:
                skipped[f"{reason}: {path}" if reason == UNREADABLE else reason] += 1
            for sample in samples:
                pools[file_split(sample.key)].setdefault(collection, []).append(sample)
        sizes = split_sizes(n, VALID_FRACTION, HELDOUT_FRACTION)
        plans: dict[str, list[dict[str, Any]]] = {}
        for index, split in enumerate(self.splits):
            available = [c for c in collections if pools[split].get(c)]
            if not available:
                raise MissingRequirement(f"no {split} files in the collections {', '.join(collections)}")
            weights = np.array([WEIGHTS[c] for c in available])
            rng = np.random.default_rng([seed, index, 0x2EC0])
            plans[split] = []
            for _ in range(sizes[split]):
                pool = pools[split][available[int(rng.choice(len(available), p=weights / weights.sum()))]]
                plans[split].append(_draw_spec(rng, pool[int(rng.integers(len(pool)))], duration))
        return plans, skipped

    def render(self, spec: dict[str, Any], options: dict[str, Any]) -> Clip | Skipped:
        """Load, resample, place the hits, cut to the clip length and set the level."""
        import numpy as np
        duration, rate, _ = _options(options)
        try:
            wav = load(spec["source_file"], rate)  # [N]
        except Exception as err:  # noqa: BLE001 - a file that passed sf.info may still fail to decode
            return Skipped(UNREADABLE, f"{spec['source_file']}: {err}")
        length = int(round(duration * rate))
        out = np.zeros(length, dtype=np.float32)  # [length]
        lead = int(round(spec["lead_s"] * rate))
        step = int(round(60.0 / spec["tempo_bpm"] * rate)) if spec["hits"] > 1 else 0
        truncated = False
        for hit in range(spec["hits"]):
            start = lead + hit * step
            end = min(length, start + wav.size)
            if end - start < wav.size:
                truncated = True
            if end > start:
                out[start:end] += wav[:end - start]
        if truncated:
            fade = min(int(FADE_S * rate), length)
            out[length - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        peak = float(np.abs(out).max())
        if peak > 0.0:
            out *= np.float32(10.0 ** (spec["peak_db"] / 20.0) / peak)
        labels = {"family": "recorded", "collection": spec["collection"], "category": spec["category"],
                  "name": spec["name"], "source_file": spec["source_file"], "drums": spec["drums"],
                  "instrument_family": spec["instrument_family"], "licence": spec["licence"], "hits": spec["hits"],
                  "tempo_bpm": spec["tempo_bpm"], "peak_db": spec["peak_db"], "truncated": truncated}
        for key in ("kit", "instrument", "text"):
            if spec.get(key) is not None:
                labels[key] = spec[key]
        return Clip(out, rate, caption(spec, np.random.default_rng(spec["caption_seed"])), labels)

    def credits(self, options: dict[str, Any]) -> list[Credit]:
        """Each collection used and each drum kit, with its licence."""
        credits = []
        for collection in _used_collections(options):
            if collection == "hydrogen":
                for kit in drum_kits():
                    note = f"by {kit['author']}" if kit["author"] else ""
                    if kit["debian_licence"]:
                        note += f"{'; ' if note else ''}Debian's copyright file: {kit['debian_licence']}"
                    credits.append(Credit(f"Hydrogen drum kit {kit['kit']}", kit_licence(kit),
                                          "Debian hydrogen-drumkits", note.replace("|", "/")))
            elif collection == "lmms":
                credits.append(Credit("LMMS sample library (/usr/share/lmms/samples)", LMMS_LICENCE,
                                      "Debian lmms-common", "per Debian's copyright file (Files: *, GPL-2+)"))
            else:
                unlisted = [s.key.removesuffix(".oga") for s in inventory("freedesktop")[0] if s.licence == UNLISTED]
                if unlisted:
                    credits.append(Credit(f"freedesktop.org sound theme: {', '.join(unlisted)}", UNLISTED,
                                          "Debian sound-theme-freedesktop", "see the package's README and CREDITS"))
                for patterns, licence, holder in debian_stanzas(FREEDESKTOP_COPYRIGHT):
                    files = [p.removeprefix("stereo/").removesuffix(".oga") for p in patterns
                             if p.startswith("stereo/") and not p.startswith("stereo/stereo")]
                    if files:
                        credits.append(Credit(f"freedesktop.org sound theme: {', '.join(files)}", licence,
                                              "Debian sound-theme-freedesktop", holder.replace("|", "/")))
        return credits


def _draw_spec(rng: np.random.Generator, sample: Sample, duration: float) -> dict[str, Any]:
    """One clip of ``sample``: level, lead-in, and for a short drum hit how many hits at what tempo."""
    lead = round(float(rng.uniform(*LEAD_S)), 3)
    hits, tempo = 1, None
    if sample.drums and sample.seconds <= MAX_HIT_S and rng.random() < 0.5:
        tempo = int(rng.integers(TEMPO_BPM[0], TEMPO_BPM[1] + 1))
        room = duration - lead - min(sample.seconds, 0.25)  # the last hit may ring into the end of the clip
        hits = int(min(rng.integers(2, 5), 1 + max(0.0, room) // (60.0 / tempo)))
        if hits < 2:
            hits, tempo = 1, None
    spec = asdict(sample)
    spec.pop("path"), spec.pop("key"), spec.pop("seconds")
    return {**spec, "source_file": sample.path, "peak_db": round(float(rng.uniform(*PEAK_DB)), 2), "lead_s": lead,
            "hits": hits, "tempo_bpm": tempo, "caption_seed": int(rng.integers(2**31))}
