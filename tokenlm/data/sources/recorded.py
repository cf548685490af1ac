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

The module also lists real recordings for checking detectors: :func:`hydrogen_hits`,
:func:`lmms_instrument_samples` and :func:`asterisk_voice_clips` (each ``[]`` when its package is absent).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import re
import unicodedata
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenlm.data.sources.base import Clip, Credit, DataSource, MissingRequirement, Skipped

if TYPE_CHECKING:
    import numpy as np

HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")
LMMS_DIR = Path("/usr/share/lmms/samples")
FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")
ASTERISK_DIRS = (Path("/usr/share/asterisk/sounds/en"), Path("/usr/share/asterisk/sounds/en_US_f_Allison"))
HYDROGEN_COPYRIGHT = Path("/usr/share/doc/hydrogen-drumkits/copyright")
FREEDESKTOP_COPYRIGHT = Path("/usr/share/doc/sound-theme-freedesktop/copyright")
COLLECTIONS = ("hydrogen", "lmms", "freedesktop")
PACKAGES = {"hydrogen": "hydrogen-drumkits", "lmms": "lmms-common", "freedesktop": "sound-theme-freedesktop"}
#: how often a clip is drawn from each collection (renormalised over the collections used)
WEIGHTS = {"hydrogen": 0.4, "lmms": 0.45, "freedesktop": 0.15}
LMMS_LICENCE = "GPL-2.0-or-later"
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
UNREADABLE = "unreadable file"
UNLISTED = "not listed in Debian's copyright file"
NO_CAPTION = "no caption for the name"


@dataclass(frozen=True)
class Sample:
    """One recorded file and what its caption and labels say about it."""

    path: str
    collection: str
    key: str  # the path inside its collection: the held-out rule hashes it
    category: str  # drums, instrument, effect, crowd, alert, speech
    name: str  # readable, singular: "closed hi-hat"
    phrase: str  # with its article: "a closed hi-hat"
    drums: bool
    instrument_family: str | None
    licence: str
    seconds: float
    kit: str | None = None
    instrument: str | None = None  # the drum kit's own instrument name
    text: str | None = None  # the words of a spoken sample


# --- names -> captions -------------------------------------------------------------------------------------------
# LMMS file-name stem (trailing digits dropped) -> (phrase, category, instrument family); drums/ files are drums
_LMMS: dict[str, tuple[str, str, str | None]] = {
    "bassdrum": ("a bass drum", "drums", None), "bassdrum_acoustic": ("an acoustic bass drum", "drums", None),
    "clap": ("a hand clap", "drums", None), "clav": ("a clave", "drums", None),
    "crash": ("a crash cymbal", "drums", None), "hihat_closed": ("a closed hi-hat", "drums", None),
    "hihat_foot_pedal": ("a foot-pedal hi-hat", "drums", None), "hihat_opened": ("an open hi-hat", "drums", None),
    "kick": ("a kick drum", "drums", None), "kick_distorted": ("a distorted kick drum", "drums", None),
    "kick_hard": ("a hard kick drum", "drums", None), "kick_hardcore": ("a hardcore kick drum", "drums", None),
    "kick_hiphop": ("a hip-hop kick drum", "drums", None), "kick_long": ("a long kick drum", "drums", None),
    "kick_soft": ("a soft kick drum", "drums", None), "nasty_bass": ("a harsh bass drum", "drums", None),
    "nasty_rim": ("a harsh rimshot", "drums", None), "nasty_snare": ("a harsh snare drum", "drums", None),
    "ride": ("a ride cymbal", "drums", None), "rim": ("a rimshot", "drums", None),
    "shaker": ("a shaker", "drums", None), "sidestick": ("a side stick", "drums", None),
    "snare": ("a snare drum", "drums", None), "snare_acoustic": ("an acoustic snare drum", "drums", None),
    "snare_electro": ("an electronic snare drum", "drums", None), "snare_harsh": ("a harsh snare drum", "drums", None),
    "snare_hiphop": ("a hip-hop snare drum", "drums", None), "snare_muffled": ("a muffled snare drum", "drums", None),
    "snare_rim": ("a snare rimshot", "drums", None), "snare_short": ("a short snare drum", "drums", None),
    "tom": ("a tom", "drums", None), "tom_hi": ("a high tom", "drums", None), "tom_low": ("a low tom", "drums", None),
    "tom_mid": ("a mid tom", "drums", None), "wood": ("a woodblock", "drums", None),
    "zap": ("an electronic zap", "drums", None),
    "bassslap": ("a slap bass", "instrument", "bass"), "cello": ("a cello", "instrument", "strings"),
    "church_organ": ("a church organ", "instrument", "organ"), "e_organ": ("an electric organ", "instrument", "organ"),
    "e_piano_accord": ("a chord on an electric piano", "instrument", "piano"),
    "flute": ("a flute", "instrument", "pipe"), "harpsichord": ("a harpsichord", "instrument", "piano"),
    "piano": ("a piano", "instrument", "piano"), "steel_guitar": ("a steel-string guitar", "instrument", "guitar"),
    "steel_guitar_heavy_distorted": ("a heavily distorted steel-string guitar", "instrument", "guitar"),
    "steel_guitar_medium_distorted": ("a distorted steel-string guitar", "instrument", "guitar"),
    "steel_guitar_slight_distorted": ("a slightly distorted steel-string guitar", "instrument", "guitar"),
    "trumpet": ("a trumpet", "instrument", "brass"),
    "violin_double_stop": ("a violin playing a double stop", "instrument", "strings"),
    "violin_fingered": ("a violin playing fingered notes", "instrument", "strings"),
    "violin_pizzicato": ("a violin played pizzicato", "instrument", "strings"),
    "latin_brass": ("a Latin brass section", "instrument", "brass"),
    "latin_guitar": ("a Latin guitar phrase", "instrument", "guitar"),
    "bass": ("a bass note", "instrument", "bass"), "bass_acid": ("an acid synth bass", "instrument", "bass"),
    "bass_hard": ("a hard synth bass", "instrument", "bass"), "bass_punch": ("a punchy bass", "instrument", "bass"),
    "horror_bass": ("an eerie bass", "instrument", "bass"),
    "matrix1000_pluck": ("a plucked synth bass", "instrument", "bass"),
    "rave_bass": ("a rave synth bass", "instrument", "bass"),
    "synth_acid": ("an acid synth bass", "instrument", "bass"),
    "techno_synth": ("a techno synth bass", "instrument", "bass"),
    "bell_choir": ("a bell choir", "instrument", "chromatic percussion"),
    "chorus": ("a choir", "instrument", "ensemble"), "heaven_strings": ("lush synth strings", "instrument", "ensemble"),
    "juno_pad": ("a Juno synth pad", "instrument", "synth pad"),
    "korg_poly6_drone": ("a synth drone", "instrument", "synth pad"),
    "nord_ambient": ("an ambient synth pad", "instrument", "synth pad"),
    "orion_string": ("synth strings", "instrument", "ensemble"),
    "rave_choir": ("a synth choir", "instrument", "ensemble"),
    "space_strings": ("spacey synth strings", "instrument", "ensemble"),
    "strings": ("a string ensemble", "instrument", "ensemble"),
    "chroma_sound_effect": ("a synthesised sound effect", "effect", None),
    "explode": ("an explosion", "effect", None), "filter_sweep": ("a synth filter sweep", "effect", None),
    "scratch": ("a record scratch", "effect", None), "start": ("a start-up sound effect", "effect", None),
    "stop": ("a stopping sound effect", "effect", None), "warp": ("a warping sound effect", "effect", None),
    "wind_chimes": ("wind chimes", "effect", "chromatic percussion"),
    "applause": ("applause", "crowd", None), "breath": ("a breath", "effect", None),
    "buzz!": ("a buzz", "effect", None),
    "dong": ("a dong", "effect", None), "electric_ping": ("an electric ping", "effect", None),
    "hit": ("a hit", "effect", None), "metalish_dong": ("a metallic dong", "effect", None),
    "metronome": ("a metronome click", "effect", None), "raving_crowd": ("a cheering crowd", "crowd", None),
}
LMMS_FOLDERS = ("drums", "instruments", "basses", "stringsnpads", "latin", "effects", "misc")
# freedesktop theme file stem -> (phrase, category)
_FREEDESKTOP: dict[str, tuple[str, str]] = {
    "alarm-clock-elapsed": ("an alarm clock ringing", "alert"),
    "audio-test-signal": ("a burst of test noise", "effect"),
    "audio-volume-change": ("a short volume-change blip", "alert"), "bell": ("a bell", "alert"),
    "camera-shutter": ("a camera shutter", "effect"), "complete": ("a completion chime", "alert"),
    "device-added": ("a device-connected chime", "alert"), "device-removed": ("a device-removed chime", "alert"),
    "dialog-error": ("an error alert", "alert"), "dialog-information": ("an information blip", "alert"),
    "dialog-warning": ("a warning alert", "alert"), "message-new-instant": ("an instant-message notification", "alert"),
    "message": ("a message notification", "alert"), "network-connectivity-established": ("a connection chime", "alert"),
    "network-connectivity-lost": ("a disconnection chime", "alert"),
    "phone-incoming-call": ("a phone ringing", "alert"), "phone-outgoing-busy": ("a telephone busy tone", "alert"),
    "phone-outgoing-calling": ("a telephone ringback tone", "alert"),
    "power-plug": ("a power-plugged chime", "alert"), "power-unplug": ("a power-unplugged chime", "alert"),
    "screen-capture": ("a camera shutter", "effect"), "service-login": ("a log-in chime", "alert"),
    "service-logout": ("a log-out chime", "alert"), "suspend-error": ("an error beep", "alert"),
    "trash-empty": ("a rustle of crumpled paper", "effect"), "window-attention": ("an attention chime", "alert"),
    "window-question": ("a question chime", "alert"),
}
# drum-kit instrument name (normalised) -> readable name: the first pattern that matches wins
_DRUM_NAMES: tuple[tuple[str, str], ...] = (
    (r"crash.?ride.*bell", "crash-ride cymbal bell"), (r"crash.?ride", "crash-ride cymbal"),
    (r"ride.*(bell|cup)|^bell$", "ride cymbal bell"), (r"ride", "ride cymbal"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(pedal|\bpd\b|foot)|pedal.*(hh|hat)", "foot-pedal hi-hat"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*semi|semi.*hat", "half-open hi-hat"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(open|\bop\b)|open.*(hh|hat)|side ohh", "open hi-hat"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(closed|\bcl\b)|closed.*(hh|hat)", "closed hi-hat"),
    (r"hi.?hat|\bhh\b|\bhat\b", "hi-hat"),
    (r"kick|bass ?drum", "kick drum"), (r"snare.*rim", "snare rimshot"), (r"snare.*roll", "snare roll"),
    (r"snare", "snare drum"), (r"rim|stick", "rimshot"), (r"floor tom|tom floor", "floor tom"),
    (r"tom.*(low|\blo\b)|low tom", "low tom"), (r"tom.*mid|mid.*tom|middle tom", "mid tom"),
    (r"tom.*(hi|high)|high tom", "high tom"), (r"\btom", "tom"), (r"china", "china cymbal"),
    (r"splash", "splash cymbal"), (r"crash", "crash cymbal"), (r"cymbal", "cymbal"), (r"snap", "finger snap"),
    (r"clap", "hand clap"), (r"cowbell", "cowbell"), (r"tambourine", "tambourine"), (r"agogo", "agogo bell"),
    (r"maraca", "maraca"), (r"clave", "clave"), (r"woodblock", "woodblock"), (r"cajon.*slap", "cajon slap"),
    (r"cajon", "cajon"), (r"bongo", "bongo"), (r"conga", "conga"), (r"djembe.*slap", "djembe slap"),
    (r"djembe.*bass", "djembe bass tone"), (r"djembe", "djembe"), (r"(sangban|dununba|kenkeni).*bell", "dunun bell"),
    (r"sangban|dununba|kenkeni", "dunun drum"), (r"waterglass", "water glass"), (r"whistle", "whistle"),
    (r"\bzap\b", "electronic zap"),
)
_BRANDS = re.compile(r"\b(pearl|sabian|paiste|zildjian|tama|varibreaks)\b")


def drum_name(instrument: str) -> str | None:
    """A readable name for a drum-kit instrument (``"Sabian Hat Closed"`` -> ``"closed hi-hat"``), or None."""
    text = re.sub(r"\(.*?\)", " ", instrument.lower())  # drop "(Tama Superstar 22")"
    text = re.sub(r"^[a-g]#?\d\s*-\s*", "", text)  # drop a note prefix: "c#3 - stick"
    text = " ".join(_BRANDS.sub(" ", text).split())
    for pattern, name in _DRUM_NAMES:
        if re.search(pattern, text):
            return name
    return None


def with_article(name: str) -> str:
    """``name`` with "a" or "an" in front."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def file_split(key: str) -> str:
    """The only split a file of a collection may appear in, from a fixed hash of its path inside the collection."""
    bucket = zlib.crc32(key.encode()) % 10
    return "test_heldout" if bucket == 0 else "valid" if bucket == 1 else "train"


# --- licences ------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def debian_stanzas(path: Path) -> tuple[tuple[tuple[str, ...], str, str], ...]:
    """``(file patterns, licence, copyright)`` of each ``Files:`` stanza of a machine-readable Debian copyright
    file (``()`` when absent)."""
    if not path.exists():
        return ()
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", path.read_text(errors="replace")):
        fields: dict[str, str] = {}
        current = None
        for line in paragraph.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match:
                current = match.group(1)
                fields.setdefault(current, match.group(2).strip())
            elif current and line.startswith(" ") and current in ("Files", "Copyright"):
                fields[current] = f"{fields[current]} {line.strip()}".strip()
        if "Files" in fields and "License" in fields:
            stanzas.append((tuple(fields["Files"].split()), fields["License"], fields.get("Copyright", "")))
    return tuple(stanzas)


def debian_licence(path: Path, file: str) -> str | None:
    """The licence a Debian copyright file gives ``file`` (the last matching stanza wins, as the format says)."""
    found = None
    for patterns, licence, _ in debian_stanzas(path):
        if any(fnmatch.fnmatchcase(file, pattern) for pattern in patterns):
            found = licence
    return found


# --- inventory -----------------------------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


@functools.cache
def drum_kits() -> tuple[dict[str, Any], ...]:
    """Each installed Hydrogen kit: ``{"kit", "author", "licence" (from drumkit.xml or None), "debian_licence",
    "instruments": [(instrument name, [sample paths])]}``."""
    kits = []
    for xml in sorted(HYDROGEN_DIR.glob("*/drumkit.xml")) if HYDROGEN_DIR.is_dir() else []:
        root = ET.parse(xml).getroot()
        instruments = []
        for element in root.iter():
            if _local(element.tag) != "instrument":
                continue
            files = [xml.parent / (f.text or "").strip() for f in element.iter() if _local(f.tag) == "filename"]
            files = [f for f in dict.fromkeys(files) if f.is_file()]
            if files:
                instruments.append((_child_text(element, "name") or "", [str(f) for f in files]))
        kit = xml.parent.name
        kits.append({"kit": kit, "author": _child_text(root, "author") or "", "licence": _child_text(root, "license")
                     or None, "debian_licence": _debian_kit_licence(kit),
                     "instruments": instruments})
    return tuple(kits)


def _debian_kit_licence(kit: str) -> str | None:
    """The licence Debian's copyright file gives a kit (its archive may drop a version: "circAfrique v4")."""
    return debian_licence(HYDROGEN_COPYRIGHT, f"drumkits/{kit}.h2drumkit") or \
        debian_licence(HYDROGEN_COPYRIGHT, f"drumkits/{kit.split(' ')[0]}.h2drumkit")


def _kit_licence(kit: dict[str, Any]) -> str:
    return kit["licence"] or "see drumkit.xml"


def _seconds(path: str) -> float | None:
    """The file's duration, or None when soundfile cannot read it."""
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception:  # noqa: BLE001 - libsndfile raises several types for unreadable files
        return None
    return info.duration if info.frames > 0 else None


@functools.cache
def inventory(collection: str) -> tuple[tuple[Sample, ...], tuple[tuple[str, str], ...]]:
    """``(samples, skipped)`` of one collection: every captionable readable file, and ``(reason, path)`` of each
    file left out (unreadable, or a name that says nothing)."""
    if collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {collection!r}; allowed: {', '.join(COLLECTIONS)}")
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    if collection == "hydrogen":
        for kit in drum_kits():
            for instrument, files in kit["instruments"]:
                name = drum_name(instrument)
                for path in files:
                    seconds = _seconds(path) if name else None
                    if name is None or seconds is None:
                        skipped.append((NO_CAPTION if name is None else UNREADABLE, path))
                        continue
                    key = str(Path(path).relative_to(HYDROGEN_DIR))
                    samples.append(Sample(path, collection, key, "drums", name, with_article(name), True, None,
                                          _kit_licence(kit), seconds, kit=kit["kit"], instrument=instrument))
    elif collection == "lmms":
        for folder in LMMS_FOLDERS:
            for file in sorted((LMMS_DIR / folder).glob("*")) if (LMMS_DIR / folder).is_dir() else []:
                stem = re.sub(r"\d+$", "", file.stem)
                entry = _LMMS.get(stem)
                seconds = _seconds(str(file)) if entry else None
                if entry is None or seconds is None:
                    skipped.append((NO_CAPTION if entry is None else UNREADABLE, str(file)))
                    continue
                phrase, category, family = entry
                drums = folder == "drums"
                name = phrase.split(" ", 1)[1] if phrase.split(" ", 1)[0] in ("a", "an") else phrase
                samples.append(Sample(str(file), collection, f"{folder}/{file.name}", category, name, phrase, drums,
                                      family, LMMS_LICENCE, seconds))
    else:
        for file in sorted(FREEDESKTOP_DIR.glob("*.oga")) if FREEDESKTOP_DIR.is_dir() else []:
            licence = debian_licence(FREEDESKTOP_COPYRIGHT, f"stereo/{file.name}") or UNLISTED
            seconds = _seconds(str(file))
            words = re.fullmatch(r"audio-channel-(\w+)-(\w+)", file.stem)
            entry = (f"a voice saying \"{words[1]} {words[2]}\"", "speech") if words else _FREEDESKTOP.get(file.stem)
            if entry is None or seconds is None:
                skipped.append((NO_CAPTION if entry is None else UNREADABLE, str(file)))
                continue
            phrase, category = entry
            name = "voice" if words else phrase.split(" ", 1)[1] if phrase.split(" ", 1)[0] in ("a", "an") else phrase
            samples.append(Sample(str(file), collection, file.name, category, name, phrase, False, None, licence,
                                  seconds, text=f"{words[1]} {words[2]}" if words else None))
    return tuple(samples), tuple(skipped)


def installed_collections() -> list[str]:
    """The collections whose package is installed."""
    found = {"hydrogen": bool(drum_kits()), "lmms": LMMS_DIR.is_dir(),
             "freedesktop": FREEDESKTOP_DIR.is_dir() and any(FREEDESKTOP_DIR.glob("*.oga"))}
    return [name for name in COLLECTIONS if found[name]]


# --- evaluation sets of real recordings ----------------------------------------------------------------------------
def hydrogen_hits() -> list[tuple[str, str, bool]]:
    """``(path, instrument name, is_drum=True)`` of every readable Hydrogen sample with a recognisable name."""
    return [(s.path, s.name, True) for s in inventory("hydrogen")[0]]


def lmms_instrument_samples() -> list[tuple[str, str, str]]:
    """``(path, name, General MIDI instrument family)`` of every readable LMMS sample of a known family."""
    return [(s.path, s.name, s.instrument_family) for s in inventory("lmms")[0] if s.instrument_family]


_ASTERISK_NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"}
_NATO = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
         "romeo sierra tango uniform victor whiskey x-ray yankee zulu").split()
_MONTHS = ("january february march april may june july august september october november december").split()
_DAYS = ("sunday monday tuesday wednesday thursday friday saturday").split()
_SPOKEN_SYMBOLS = {"asterisk": "asterisk", "at": "at", "dash": "dash", "dollar": "dollar", "dot": "dot",
                   "equals": "equals", "exclaimation-point": "exclamation point", "plus": "plus", "slash": "slash",
                   "space": "space", "zed": "zed"}


def _number_words(n: int) -> str:
    ones = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen").split()
    tens = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
            90: "ninety"}
    if n == 100:
        return "one hundred"
    return ones[n] if n < 20 else tens.get(n, str(n))


def _ordinal(n: int) -> str:
    irregular = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}
    word = _number_words(n)
    return irregular.get(n) or (f"{word[:-1]}ieth" if word.endswith("y") else f"{word}th")


def asterisk_transcript(relative: str) -> str:
    """An approximate transcript of an Asterisk prompt from its file name: Debian's ``asterisk-core-sounds-en-*``
    ships no transcript file, so ``digits/7.wav`` -> "seven", ``letters/b.wav`` -> "b", ``vm-goodbye.wav`` ->
    "vm goodbye" (abbreviations stay as written)."""
    folder, _, stem = relative.rpartition("/")
    stem = stem.rsplit(".", 1)[0]
    if folder == "digits" and stem.isdigit():
        return _number_words(int(stem))
    number = re.fullmatch(r"(h|mon|day)-(\d+)", stem)
    if folder == "digits" and number:
        index = int(number[2])
        if number[1] == "mon" and index < 12:
            return _MONTHS[index]
        if number[1] == "day" and index < 7:
            return _DAYS[index]
        if number[1] == "h":
            return _ordinal(index)

    if folder == "letters":
        if stem.startswith("ascii") and stem[5:].isdigit():
            return unicodedata.name(chr(int(stem[5:])), stem).lower()  # ascii36 -> "dollar sign"
        return _SPOKEN_SYMBOLS.get(stem, stem)
    if folder == "phonetic":
        stem = stem.removesuffix("_p")
        return _NATO[ord(stem) - ord("a")] if len(stem) == 1 and stem.isalpha() else \
            _number_words(int(stem)) if stem.isdigit() else stem
    return re.sub(r"[-_]+", " ", stem)


def asterisk_voice_clips() -> list[tuple[str, str]]:
    """``(path, transcript)`` of every spoken English Asterisk prompt (Allison Smith's recordings, 8 kHz), with
    tones, silences and the monkey noises left out; transcripts from :func:`asterisk_transcript`."""
    root = next((d for d in ASTERISK_DIRS if d.is_dir()), None)
    if root is None:
        return []
    clips = []
    for path in sorted(root.rglob("*.wav")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("silence/") or path.stem in _ASTERISK_NOT_SPEECH:
            continue
        clips.append((str(path), asterisk_transcript(relative)))
    return clips


# --- options -------------------------------------------------------------------------------------------------------
def _duration(value: Any) -> float:
    """``--duration`` checked: seconds within :data:`DURATION_LIMITS`."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not DURATION_LIMITS[0] <= seconds <= DURATION_LIMITS[1]:
        raise ValueError(f"duration must be seconds within {list(DURATION_LIMITS)}, got {value!r}")
    return seconds


def _sample_rate(value: Any) -> int:
    """``--sample-rate`` checked: an integer number of Hz within :data:`SAMPLE_RATE_LIMITS`."""
    text = str(value).strip()
    rate = int(text) if not isinstance(value, (bool, float)) and text.isdigit() else -1
    if not SAMPLE_RATE_LIMITS[0] <= rate <= SAMPLE_RATE_LIMITS[1]:
        raise ValueError(f"sample rate must be an integer number of Hz within {list(SAMPLE_RATE_LIMITS)}, "
                         f"got {value!r}")
    return rate


def _collections(value: Any) -> tuple[str, ...]:
    """``--collections`` checked: a comma-separated subset of :data:`COLLECTIONS`."""
    names = tuple(part.strip() for part in value.split(",")) if isinstance(value, str) else tuple(value)
    unknown = [name for name in names if name not in COLLECTIONS]
    if not names or unknown:
        raise ValueError(f"collections must be a comma-separated subset of {', '.join(COLLECTIONS)}, got {value!r}")
    return tuple(dict.fromkeys(names))


def _argparse_type(check: Any) -> Any:
    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = check.__name__.lstrip("_")
    return parse


def _options(options: dict[str, Any]) -> tuple[float, int, tuple[str, ...] | None]:
    """(duration, sample rate, collections asked for or None for all installed) from ``options``, checked."""
    duration = options.get("duration")
    rate = options.get("sample_rate")
    collections = options.get("collections")
    return (_duration(DEFAULT_DURATION if duration is None else duration),
            _sample_rate(DEFAULT_SAMPLE_RATE if rate is None else rate),
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
        parser.add_argument("--duration", type=_argparse_type(_duration), default=DEFAULT_DURATION,
                            help=f"clip length in seconds (default {DEFAULT_DURATION:g})")
        parser.add_argument("--sample-rate", type=_argparse_type(_sample_rate), default=DEFAULT_SAMPLE_RATE,
                            help=f"output sample rate in Hz (default {DEFAULT_SAMPLE_RATE})")
        parser.add_argument("--collections", type=_argparse_type(_collections), default=None,
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
                    credits.append(Credit(f"Hydrogen drum kit {kit['kit']}", _kit_licence(kit),
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
