"""The data-source interface and the one build engine every source shares.

A source (``tokenlm data music``, ``speech``, ``recorded``, or a third party's, registered under the entry-point
group ``tokenlm.data_sources``) says three things:

- :meth:`DataSource.check` that what it needs is installed (one line naming the Debian package when not);
- :meth:`DataSource.plan`: every clip of every split as a small JSON-able spec, drawn from the seed alone;
- :meth:`DataSource.render`: the audio, caption and labels of one spec (run in worker processes).

:func:`build` does the rest once for all sources: workers, progress, silent renders dropped, unreadable inputs
counted, sidecar files (a clip's MIDI), manifests in the training format, a build report and a credits file. The
whole folder is written under a temporary name and renamed at the end, so a failed build leaves nothing half-written.
Clip ``i`` of a split depends only on its spec, so any number of workers writes the same bytes.

Example::

    from tokenlm.data.sources import build, get_source

    report = build(get_source("music"), "music/", n=1000, seed=0, workers=2)
    report["splits"]["train"]["clips"]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenlm.common.progress import progress_bar

if TYPE_CHECKING:
    import numpy as np

#: a render whose peak is below this (about -80 dBFS) is silent and dropped
SILENCE_PEAK = 1e-4
REPORT_NAME = "build_report.json"
CREDITS_NAME = "CREDITS.md"


class MissingRequirement(RuntimeError):
    """A program, library or data file a source needs is not installed; the message names what provides it."""


@dataclass
class Clip:
    """One rendered clip: mono or multichannel audio, its caption and labels, and files to keep beside it."""

    wav: np.ndarray  # [N] or [C, N] float32
    sample_rate: int
    description: str
    labels: dict[str, Any]
    sidecars: dict[str, bytes] = field(default_factory=dict)  # suffix (".mid") -> file content


@dataclass
class Skipped:
    """A spec that produced no clip, and why (``reason`` is a short category counted in the report)."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Credit:
    """Where some of a data set's audio comes from, and under which licence."""

    source: str
    licence: str
    provided_by: str  # e.g. the Debian package
    note: str = ""


class DataSource(ABC):
    """A captioned audio source. Subclasses set ``name`` and ``splits`` and implement the methods."""

    name: str = ""
    #: the splits :meth:`plan` returns, in the order they are written
    splits: tuple[str, ...] = ("train", "valid", "test_heldout")

    #: one line for ``tokenlm data --help``
    help: str = ""
    #: an example command line for ``--help``
    example: str = ""

    def add_arguments(self, parser: Any) -> None:  # noqa: B027 - optional hook
        """Add the source's own options to its ``tokenlm data NAME`` parser (argparse); their values reach
        :meth:`plan` and :meth:`render` as ``options`` under the option's ``dest``."""

    def check(self, options: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise :class:`MissingRequirement` when something the build needs is missing."""

    @abstractmethod
    def plan(self, n: int, seed: int, options: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], Counter]:
        """``({split: [spec, ...]}, skipped)``: every clip's spec, from ``seed`` alone, and the inputs skipped
        while planning (e.g. tunes that failed to parse), counted by reason; a key ``"reason: input"`` also names
        the input in the report's ``skipped_inputs``. ``options["workers"]`` says how many processes the build
        runs: planning may use them for its own preparation (the music source parses tunes in parallel), but the
        plan must not depend on it."""

    @abstractmethod
    def render(self, spec: dict[str, Any], options: dict[str, Any]) -> Clip | Skipped:
        """The clip of one spec (runs in a worker process; keep per-process state in module caches)."""

    def credits(self, options: dict[str, Any]) -> list[Credit]:
        """Sources and licences of the audio this build uses."""
        return []


def silent(wav: np.ndarray) -> bool:
    """True when ``wav`` never rises above :data:`SILENCE_PEAK` (or holds no finite sample)."""
    import numpy as np
    return wav.size == 0 or not np.isfinite(wav).all() or float(np.abs(wav).max()) < SILENCE_PEAK


def _render_task(task: tuple[str, dict[str, Any], dict[str, Any]]) -> Clip | Skipped:
    """Worker entry: find the source by name and render one spec."""
    from tokenlm.data.sources import get_source

    name, spec, options = task
    return get_source(name).render(spec, options)


def _rendered(source: DataSource, specs: Sequence[dict[str, Any]], options: dict[str, Any],
              workers: int) -> Iterator[Clip | Skipped]:
    """The renders of ``specs`` in order, from ``workers`` processes."""
    tasks = [(source.name, spec, options) for spec in specs]
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield source.render(task[1], options)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked child of a process whose torch / OpenMP threads are running can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_render_task, tasks, chunksize=max(1, min(16, len(tasks) // (8 * workers))))


def _write_wav(path: Path, clip: Clip) -> None:
    import numpy as np
    import soundfile as sf

    wav = np.asarray(clip.wav, dtype=np.float32)
    peak = float(np.abs(wav).max())
    if peak > 1.0:
        wav = wav / peak  # one gain for the whole clip: a render past full scale keeps its shape
    data = wav.T if wav.ndim == 2 else wav  # soundfile wants [N, C]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, clip.sample_rate, subtype="PCM_16", format="WAV")


def _write_credits(path: Path, credits: Sequence[Credit]) -> None:
    lines = ["# Credits", "", "| source | licence | provided by | note |", "| --- | --- | --- | --- |"]
    lines += [f"| {c.source} | {c.licence} | {c.provided_by} | {c.note} |" for c in credits]
    path.write_text("\n".join(lines) + "\n")


def check_build_arguments(n: int, seed: int, workers: int) -> None:
    """Refuse a clip count, seed or worker count that cannot build."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")


# --- option checks the sources share -------------------------------------------------------------------------------
def check_duration(value: Any, limits: tuple[float, float]) -> float:
    """A ``--duration`` value checked: seconds within ``limits`` (both ends allowed)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not limits[0] <= seconds <= limits[1]:
        raise ValueError(f"duration must be seconds within {list(limits)}, got {value!r}")
    return seconds


def check_sample_rate(value: Any, limits: tuple[int, int]) -> int:
    """A ``--sample-rate`` value checked: an integer number of Hz within ``limits`` (both ends allowed)."""
    text = str(value).strip()
    rate = int(text) if not isinstance(value, (bool, float)) and text.isdigit() else -1
    if not limits[0] <= rate <= limits[1]:
        raise ValueError(f"sample rate must be an integer number of Hz within {list(limits)}, got {value!r}")
    return rate


def argparse_type(check: Callable[..., Any], *args: Any) -> Callable[[str], Any]:
    """An argparse ``type`` calling ``check(text, *args)``; its ValueError becomes the option's error message
    (``argparse_type(check_duration, (0.5, 30.0))``)."""

    def parse(text: str) -> Any:
        try:
            return check(text, *args)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = check.__name__.lstrip("_").removeprefix("check_")
    return parse


def build(
    source: DataSource,
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    *,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Build ``n`` clips of ``source`` into ``out_dir`` and return the build report.

    ``out_dir`` gets ``audio/<split>/<split>_<index>.wav`` (16-bit PCM) with its caption and labels beside it
    (``<split>_<index>.json``, audiocraft's sidecar convention) and any other sidecar files (a clip's MIDI), one
    ``<split>.jsonl`` manifest per split (``path``, ``duration``, ``sample_rate``, ``channels``, ``description``,
    ``labels``; paths relative to ``out_dir``), :data:`REPORT_NAME` (clips, skips and drops by reason, seconds)
    and :data:`CREDITS_NAME`. Everything is written to a temporary folder beside ``out_dir`` and renamed into
    place at the end; an existing non-empty ``out_dir`` is refused unless ``overwrite``.
    """
    check_build_arguments(n, seed, workers)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    source.check(options)
    start = time.perf_counter()
    plans, skipped = source.plan(n, seed, {**options, "workers": workers})
    unknown = set(plans) - set(source.splits)
    if unknown:
        raise ValueError(f"source {source.name!r} planned unknown splits {sorted(unknown)}; its splits: "
                         f"{list(source.splits)}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    counts, examples = _skip_counts(skipped)
    report: dict[str, Any] = {"source": source.name, "n": n, "seed": seed, "options": _jsonable(options),
                              "splits": {}, "skipped": counts}
    if examples:
        report["skipped_inputs"] = examples
    try:
        total = sum(len(specs) for specs in plans.values())
        with progress_bar(total=total, desc=f"building {source.name}", unit="clips", disable=not progress) as bar:
            for split in (name for name in source.splits if name in plans):  # a split the options left out is absent
                report["splits"][split] = _build_split(source, staging, split, plans[split], options, workers, bar)
        report["seconds"] = round(time.perf_counter() - start, 2)
        (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        _write_credits(staging / CREDITS_NAME, source.credits(options))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return report


def _build_split(source: DataSource, root: Path, split: str, specs: Sequence[dict[str, Any]],
                 options: dict[str, Any], workers: int, bar: Any) -> dict[str, Any]:
    """Render and write one split; returns its report entry."""
    records: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    details: list[str] = []
    seconds = 0.0
    for index, result in enumerate(_rendered(source, specs, options, workers)):
        bar.update(1)
        if isinstance(result, Skipped):
            dropped[result.reason] += 1
            if result.detail and len(details) < 50:
                details.append(result.detail)
            continue
        if silent(result.wav):
            dropped["silent render"] += 1
            continue
        relative = Path("audio") / split / f"{split}_{index:06d}.wav"
        _write_wav(root / relative, result)
        for suffix, content in result.sidecars.items():
            (root / relative.with_suffix(suffix)).write_bytes(content)
        frames = result.wav.shape[-1]
        seconds += frames / result.sample_rate
        labels = dict(result.labels)
        if result.sidecars:
            labels.setdefault("sidecars", {suffix.lstrip("."): relative.with_suffix(suffix).as_posix()
                                           for suffix in sorted(result.sidecars)})
        # the caption and labels beside the clip too (audiocraft's sidecar convention: `tokenlm data index` reads it)
        metadata = {"description": result.description, "labels": labels}
        (root / relative.with_suffix(".json")).write_text(json.dumps(metadata) + "\n")
        records.append({"path": relative.as_posix(), "duration": round(frames / result.sample_rate, 6),
                        "sample_rate": result.sample_rate, "channels": 1 if result.wav.ndim == 1 else
                        int(result.wav.shape[0]), **metadata})
    (root / f"{split}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    entry: dict[str, Any] = {"clips": len(records), "audio_seconds": round(seconds, 2), "dropped": dict(dropped)}
    if details:
        entry["dropped_examples"] = details
    return entry


def _skip_counts(skipped: Counter) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Counts by reason, and the inputs named: a key ``"reason: input"`` counts under ``reason`` and lists
    ``input`` (so a report says how many files were unreadable, and which)."""
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for key, count in sorted(skipped.items()):
        reason, _, detail = str(key).partition(": ")
        counts[reason] += count
        if detail:
            examples.setdefault(reason, []).append(detail)
    return dict(counts), examples


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
            for key, value in sorted(options.items())}
