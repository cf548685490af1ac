"""What the Debian packages hold: their folders, their copyright files' licences, the Hydrogen drum kits
(:func:`drum_kits`) and every usable sample of each collection (:func:`inventory`).

The folders are read from this module's globals when a function runs (tests point them elsewhere).
"""

from __future__ import annotations

import fnmatch
import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenlm.data.sources.recorded.names import _FREEDESKTOP, _LMMS, LMMS_FOLDERS, drum_name, with_article

HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")
LMMS_DIR = Path("/usr/share/lmms/samples")
FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")
HYDROGEN_COPYRIGHT = Path("/usr/share/doc/hydrogen-drumkits/copyright")
FREEDESKTOP_COPYRIGHT = Path("/usr/share/doc/sound-theme-freedesktop/copyright")
COLLECTIONS = ("hydrogen", "lmms", "freedesktop")
PACKAGES = {"hydrogen": "hydrogen-drumkits", "lmms": "lmms-common", "freedesktop": "sound-theme-freedesktop"}
LMMS_LICENCE = "GPL-2.0-or-later"
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


def kit_licence(kit: dict[str, Any]) -> str:
    """A kit's licence as its drumkit.xml gives it, or where to look."""
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
                                          kit_licence(kit), seconds, kit=kit["kit"], instrument=instrument))
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

