"""Dataset manifests: JSONL files with one line per audio file, compatible with audiocraft's ``data.jsonl``.

A line holds ``path`` (absolute, or relative to the manifest's folder), ``duration`` (seconds),
``sample_rate`` (Hz), optionally ``channels``, and any metadata, e.g.::

    {"path": "dogs/bark_01.wav", "duration": 4.2, "sample_rate": 44100, "channels": 1,
     "description": "a dog barks twice", "labels": {"source": "dog"}}

Metadata may also live in a sidecar ``<audio path without extension>.json`` (audiocraft's convention, e.g.
``dogs/bark_01.json``); inline keys win over sidecar keys (a shallow merge). Manifests ending in ``.gz``
are read and written gzip-compressed, as audiocraft allows.

Example::

    count = index_directory("sounds/", "sounds/data.jsonl")  # scan, read headers, merge sidecars
    entries = read_manifest("sounds/data.jsonl")             # [AudioEntry(path=..., duration=..., ...)]
"""

from __future__ import annotations

import gzip
import json
import math
import numbers
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import soundfile as sf

from tokenlm.common.progress import progress_bar

#: keys every manifest line must have
REQUIRED_KEYS = ("path", "duration", "sample_rate")
#: keys describing the file itself; everything else on a line is metadata (``AudioEntry.attributes``)
FILE_KEYS = ("path", "duration", "sample_rate", "channels")
#: extensions ``index_directory`` considers (each file must also be readable by soundfile)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
#: errors soundfile raises for unreadable, corrupt or unsupported files
SOUNDFILE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, TypeError, ValueError)


@dataclass
class AudioEntry:
    """One audio file of a manifest.

    Attributes:
        path: the audio file (absolute after :func:`read_manifest`).
        duration: length in seconds.
        sample_rate: sample rate in Hz.
        channels: number of channels, or None when the manifest does not say.
        attributes: metadata (``description``, ``genre``, ``bpm``, ``labels``, ...), sidecar merged in.
    """

    path: Path
    duration: float
    sample_rate: int
    channels: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_record(self, base: Path | None = None) -> dict[str, Any]:
        """The JSON object of this entry; ``path`` is written relative to ``base`` when it lies under it."""
        record: dict[str, Any] = {"path": _portable_path(self.path, base), "duration": self.duration,
                                  "sample_rate": self.sample_rate}
        if self.channels is not None:
            record["channels"] = self.channels
        for key, value in self.attributes.items():
            if key in FILE_KEYS:
                raise ValueError(f"attribute key {key!r} of '{self.path}' clashes with a manifest file key")
            record[key] = value
        return record


def _portable_path(path: Path, base: Path | None) -> str:
    """``path`` relative to ``base`` when it lies inside it (or is already relative), else absolute."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    absolute = Path(os.path.abspath(path))
    if base is not None:
        try:
            return absolute.relative_to(Path(os.path.abspath(base))).as_posix()
        except ValueError:
            pass
    return str(absolute)


def sidecar_path(audio_path: str | Path) -> Path:
    """The sidecar metadata file of ``audio_path``: same folder and name, extension ``.json``."""
    return Path(audio_path).with_suffix(".json")


def read_sidecar(audio_path: str | Path) -> dict[str, Any]:
    """Metadata from the sidecar of ``audio_path`` (``{}`` when there is none), without file keys.

    Raises:
        ValueError: the sidecar is not valid JSON or not a JSON object.
    """
    path = sidecar_path(audio_path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"malformed sidecar metadata '{path}': {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"sidecar metadata '{path}' must hold a JSON object, got {type(data).__name__}")
    return {key: value for key, value in data.items() if key not in FILE_KEYS}


def _open_text(path: Path, mode: str, compressed: bool) -> IO[str]:
    """Open a manifest for reading (``mode="r"``) or writing (``"w"``) text, through gzip if ``compressed``."""
    if compressed:
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _entry_from_record(record: Any, base: Path, where: str, sidecars: bool) -> AudioEntry:
    """Validate one manifest line and build its entry; ``where`` (``file:line``) prefixes every error."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}; a line needs {list(REQUIRED_KEYS)}")
    raw_path, duration, rate = record["path"], record["duration"], record["sample_rate"]
    channels = record.get("channels")
    if not isinstance(raw_path, str) or not raw_path:
        raise ValueError(f"{where}: 'path' must be a non-empty string, got {raw_path!r}")
    if (isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not math.isfinite(duration)
            or duration < 0):
        raise ValueError(f"{where}: 'duration' must be a finite number of seconds >= 0, got {duration!r}")
    if (isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate != int(rate)
            or rate <= 0):
        raise ValueError(f"{where}: 'sample_rate' must be a positive integer, got {rate!r}")
    if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0):
        raise ValueError(f"{where}: 'channels' must be a positive integer or null, got {channels!r}")
    path = Path(raw_path)
    if not path.is_absolute():
        path = base / path
    path = Path(os.path.abspath(path))
    inline = {key: value for key, value in record.items() if key not in FILE_KEYS}
    try:
        attributes = {**read_sidecar(path), **inline} if sidecars else inline
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
    return AudioEntry(path, float(duration), int(rate), channels, attributes)


def read_manifest(path: str | Path, *, sidecars: bool = True) -> list[AudioEntry]:
    """Read a JSONL manifest (``.jsonl`` or ``.jsonl.gz``); relative paths resolve against its folder.

    With ``sidecars`` (the default) each entry's sidecar ``<audio>.json`` is merged under its inline
    metadata. Blank lines are ignored.

    Raises:
        FileNotFoundError: the manifest does not exist.
        ValueError: a line is not JSON or lacks a required key (the message names file and line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: '{path}'")
    base = Path(os.path.abspath(path.parent))
    entries = []
    with _open_text(path, "r", path.suffix == ".gz") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: malformed JSON ({error.msg} at column {error.colno})") from error
            entries.append(_entry_from_record(record, base, where, sidecars))
    return entries


def write_manifest(entries: Iterable[AudioEntry], path: str | Path, *, relative: bool = True) -> Path:
    """Write ``entries`` as a JSONL manifest atomically (a temporary file renamed over ``path``).

    With ``relative`` (the default), paths inside the manifest's folder are written relative to it, so the
    folder can be moved as a whole; other paths stay absolute. Pass ``relative=False`` for tools that
    resolve relative paths against the working directory (audiocraft does). Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent if relative else None
    lines = [json.dumps(entry.to_record(base), ensure_ascii=False) for entry in entries]
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with _open_text(tmp_path, "w", path.suffix == ".gz") as handle:
            handle.writelines(line + "\n" for line in lines)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def find_audio_files(directory: str | Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> tuple[list[Path], int]:
    """Audio files (by extension) under ``directory``, recursively and sorted, and the count of other files.

    Hidden files and folders (names starting with ``.``) are skipped, and so are sidecar ``.json`` files of
    audio files, which are not counted as other files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"audio folder not found: '{directory}'")
    suffixes = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    audio, other = [], []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            file = Path(root) / name
            (audio if file.suffix.lower() in suffixes else other).append(file)
    sidecars = {sidecar_path(file) for file in audio}
    num_other = sum(1 for file in other if file not in sidecars)
    return sorted(audio), num_other


def index_directory(
    directory: str | Path,
    out: str | Path,
    progress: bool = True,
    *,
    relative: bool = True,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
) -> int:
    """Scan ``directory`` for audio files, read their headers and write the manifest ``out``.

    Each file with an audio extension is probed with ``soundfile.info``; unreadable ones are skipped and
    counted. Sidecar metadata is merged inline. Files with other extensions are ignored (and counted).
    A summary goes to stderr. Returns the number of entries written.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: no readable audio file was found, or a sidecar is malformed.
    """
    directory = Path(directory)
    out = Path(out)
    files, num_other = find_audio_files(directory, extensions)
    entries: list[AudioEntry] = []
    skipped: Counter[str] = Counter()
    examples: list[str] = []
    for file in progress_bar(files, desc="indexing", unit="files", disable=not progress):
        try:
            info = sf.info(str(file))
            if info.frames <= 0 or info.samplerate <= 0:
                raise ValueError(f"header reports {info.frames} frames at {info.samplerate} Hz")
        except SOUNDFILE_ERRORS as error:
            skipped["unreadable"] += 1
            if len(examples) < 5:
                examples.append(f"{file}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
            continue
        duration = info.frames / info.samplerate
        entries.append(AudioEntry(Path(os.path.abspath(file)), duration, info.samplerate, info.channels,
                                  read_sidecar(file)))
    summary = f"indexed {len(entries)} audio file(s) in '{directory}'"
    if skipped:
        summary += f"; skipped {skipped['unreadable']} unreadable file(s)"
    if num_other:
        summary += f"; ignored {num_other} non-audio file(s)"
    if not entries:
        raise ValueError(f"no readable audio files in '{directory}' ({summary}; extensions: {sorted(extensions)})")
    write_manifest(entries, out, relative=relative)
    lines = [f"{summary}; wrote '{out}'", *(f"  unreadable: {example}" for example in examples)]
    print("\n".join(lines), file=sys.stderr)
    return len(entries)
