"""Token cache: a manifest pre-encoded to codec codes once, so LM training never runs the codec.

Layout of a cache folder::

    index.json               codec description, frame_rate, num_codebooks, cardinality, dtype, entries
    shard-00000.safetensors  "codes" [K, sum of T_i] (int16, or int32 past 32767 codes),
                             "offsets" int64 [n + 1]: item i is codes[:, offsets[i]:offsets[i + 1]]
    shard-00001.safetensors  ...

Each entry of ``index.json`` names its shard and item there, its frame count, source path, chunk start
(seconds) and attributes. Shards and ``index.json`` are written to temporary names and renamed;
``index.json`` comes last, so a folder with an ``index.json`` is complete.

Example::

    cache = encode_manifest("sounds/data.jsonl", codec, "cache/sounds", segment_duration=10.0)
    ds = TokenDataset(cache, segment_frames=500)
    ds.check_codec(codec)                                   # refuses codes of another codec
    batch = collate_codes([ds[i] for i in range(8)])        # codes [8, K, 500], mask [8, 500]
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import operator
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tokenlm.audio import load_audio
from tokenlm.codecs import Codec, EncodecCodec, load_codec
from tokenlm.common.progress import progress_bar
from tokenlm.data.dataset import collate_items, probe_entries
from tokenlm.data.manifest import SOUNDFILE_ERRORS, read_manifest

CACHE_FORMAT = "tokenlm-token-cache"
CACHE_VERSION = 1
INDEX_FILE = "index.json"
SHARD_PATTERN = "shard-{:05d}.safetensors"


# ---------------------------------------------------------------------------------------------------- codecs


def codec_fingerprint(codec: Codec) -> str:
    """SHA-256 of the codec's weights and buffers (as float32), to tell codecs of one architecture apart."""
    digest = hashlib.sha256()
    for name, tensor in sorted(codec.state_dict().items()):
        tensor = tensor.detach().cpu()
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def codec_description(codec: Codec) -> dict[str, Any]:
    """What a cache records about its codec: ``config()`` (kind, bandwidth), rates, K, cardinality, weights."""
    return {
        **codec.config(),
        "sample_rate": codec.sample_rate,
        "channels": codec.channels,
        "frame_rate": codec.frame_rate,
        "num_codebooks": codec.num_codebooks,
        "cardinality": codec.cardinality,
        "fingerprint": codec_fingerprint(codec),
    }


def resolve_codec(directory: str | Path, bandwidth: float | None = None) -> Codec:
    """The codec of a tokenlm checkpoint folder (its ``codec/`` and config "codec" entry) or of a plain
    Hugging Face EnCodec folder. ``bandwidth`` overrides the checkpoint's (or the EnCodec default, its first).

    Raises:
        FileNotFoundError: no folder or no ``config.json`` in it.
        ValueError: the folder is neither a tokenlm checkpoint nor an EnCodec model.
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    if not directory.is_dir():
        raise FileNotFoundError(f"codec or checkpoint folder not found: '{directory}'")
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json in '{directory}' (expected a tokenlm checkpoint or EnCodec folder)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"could not parse '{config_path}': {error}") from error
    if isinstance(config, dict) and isinstance(config.get("codec"), dict):
        codec_config = dict(config["codec"])
        if bandwidth is not None:
            codec_config["bandwidth"] = bandwidth
        return load_codec(directory / codec_config.get("path", "codec"), codec_config)
    if isinstance(config, dict) and config.get("model_type") == "encodec":
        return EncodecCodec.from_pretrained(directory, bandwidth=bandwidth)
    raise ValueError(
        f"'{directory}' is neither a tokenlm checkpoint (config.json with a 'codec' entry) nor a Hugging Face "
        "EnCodec folder (config.json with model_type 'encodec')"
    )


# -------------------------------------------------------------------------------------------------- writing


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder."""
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp_path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


class _ShardWriter:
    """Collects items' codes ``[K, T_i]`` and writes a shard every ``shard_size`` items."""

    def __init__(self, out_dir: Path, shard_size: int, dtype: torch.dtype) -> None:
        self.out_dir, self.shard_size, self.dtype = out_dir, shard_size, dtype
        self.pending: list[torch.Tensor] = []
        self.shards: list[str] = []

    def add(self, codes: torch.Tensor) -> tuple[int, int]:
        """Queue ``codes [K, T]``; returns its (shard, item) location."""
        location = (len(self.shards), len(self.pending))
        self.pending.append(codes.to(self.dtype))
        if len(self.pending) == self.shard_size:
            self.flush()
        return location

    def flush(self) -> None:
        """Write the queued items as the next shard."""
        if not self.pending:
            return
        lengths = torch.tensor([0] + [c.shape[-1] for c in self.pending], dtype=torch.int64)
        tensors = {"codes": torch.cat(self.pending, dim=-1).contiguous(), "offsets": lengths.cumsum(0)}
        name = SHARD_PATTERN.format(len(self.shards))
        tmp_path = self.out_dir / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            save_file(tensors, str(tmp_path), metadata={"format": CACHE_FORMAT})
            os.replace(tmp_path, self.out_dir / name)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        self.shards.append(name)
        self.pending = []


def _chunks(wav: torch.Tensor, chunk_samples: int | None) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start sample, wav[:, start:start + chunk])`` pieces of ``wav [C, n]`` (the whole of it without chunks)."""
    if chunk_samples is None:
        yield 0, wav
        return
    for start in range(0, wav.shape[-1], chunk_samples):
        yield start, wav[:, start : start + chunk_samples]


def encode_manifest(
    manifest: str | Path,
    codec: Codec,
    out_dir: str | Path,
    *,
    segment_duration: float | None = None,
    batch_size: int = 8,
    shard_size: int = 256,
    progress: bool = True,
) -> Path:
    """Encode every usable file of ``manifest`` with ``codec`` into a token cache in ``out_dir``.

    Files are loaded at the codec's rate and channels. With ``segment_duration`` each file is cut into
    chunks of that many seconds (the last one shorter), each its own item; otherwise a file is one item.
    Items of equal length are encoded in batches of ``batch_size``, so the codes equal ``codec.encode`` of
    each item alone. A file is loaded whole either way; for long recordings give ``segment_duration``, since
    encoding hours of audio in one pass needs the codec's activations for all of it. Entries the manifest
    lists but that are missing or unreadable are skipped and counted (``index.json["skipped"]``). A cache
    already in ``out_dir`` is replaced. Returns ``out_dir``.

    Raises:
        ValueError: bad arguments, or no usable file in the manifest.
    """
    out_dir = Path(out_dir)
    if segment_duration is not None and (not isinstance(segment_duration, numbers.Real) or not segment_duration > 0):
        raise ValueError(f"segment_duration must be a positive number of seconds or None, got {segment_duration!r}")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    clips, skipped, examples = probe_entries(read_manifest(manifest), codec.channels)
    if not clips:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items())) or "no entries"
        raise ValueError(f"no usable audio files in manifest '{manifest}' (skipped: {reasons})")

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INDEX_FILE).unlink(missing_ok=True)  # the folder is not a complete cache until the end
    dtype = torch.int16 if codec.cardinality <= 2**15 else torch.int32
    writer = _ShardWriter(out_dir, int(shard_size), dtype)
    chunk_samples = None if segment_duration is None else max(1, round(segment_duration * codec.sample_rate))
    entries: list[dict[str, Any]] = []
    batch: list[tuple[dict[str, Any], torch.Tensor]] = []  # items of one length: (entry, wav [C, n])
    failures: Counter[str] = Counter(skipped)

    def flush() -> None:
        if not batch:
            return
        wav = torch.stack([w for _, w in batch])  # [B, C, n]
        codes = codec.encode(wav).cpu()  # [B, K, T]
        for (entry, _), item_codes in zip(batch, codes, strict=True):
            entry["shard"], entry["item"] = writer.add(item_codes)
            entry["num_frames"] = int(item_codes.shape[-1])
            entries.append(entry)
        batch.clear()

    for clip in progress_bar(clips, desc="encoding", unit="files", disable=not progress):
        try:
            wav = load_audio(clip.path, codec.sample_rate, codec.channels)  # [C, n]
        except (*SOUNDFILE_ERRORS, FileNotFoundError) as error:
            failures["read failure"] += 1
            if len(examples) < 5:
                examples.append(f"{clip.path}: {error}")
            continue
        for chunk, (start, piece) in enumerate(_chunks(wav, chunk_samples)):
            if batch and (piece.shape[-1] != batch[0][1].shape[-1] or len(batch) == batch_size):
                flush()
            entry = {"path": str(clip.path), "chunk": chunk, "start": start / codec.sample_rate,
                     "attributes": clip.attributes}
            batch.append((entry, piece))
    flush()
    writer.flush()
    if not entries:
        raise ValueError(f"no file of manifest '{manifest}' could be read (skipped: {dict(failures)})")

    for stale in out_dir.glob("shard-*.safetensors"):
        if stale.name not in writer.shards:
            stale.unlink()
    index = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "codec": codec_description(codec),
        "frame_rate": codec.frame_rate,
        "num_codebooks": codec.num_codebooks,
        "cardinality": codec.cardinality,
        "dtype": str(dtype).removeprefix("torch."),
        "segment_duration": segment_duration,
        "manifest": str(Path(os.path.abspath(manifest))),
        "skipped": dict(failures),
        "shards": writer.shards,
        "entries": entries,
    }
    _write_json_atomic(out_dir / INDEX_FILE, index)
    if failures:
        details = "".join(f"\n  {example}" for example in examples)
        print(f"token cache '{out_dir}': skipped {dict(failures)}{details}", file=sys.stderr)
    return out_dir


# -------------------------------------------------------------------------------------------------- reading


def _check_int(value: Any, name: str, minimum: int) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class TokenDataset(torch.utils.data.Dataset):
    """Random segments of ``segment_frames`` code frames from a token cache, deterministic per (seed, index).

    Item ``i`` uses ``numpy.random.Generator(PCG64([seed, i]))`` to pick a cached item (uniformly) and a
    segment offset, so a trainer resumes by index position; any index >= 0 is valid. Items shorter than
    the segment are padded with code 0 and masked. Items are ``{"codes": int64 [K, T], "mask": bool [T],
    "attributes": dict, "index": int}``. Shards are memory-mapped lazily (per DataLoader worker).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        segment_frames: int,
        *,
        seed: int = 0,
        samples_per_epoch: int | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        index_path = self.cache_dir / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(f"no token cache in '{self.cache_dir}' (missing {INDEX_FILE}; "
                                    "build one with `tokenlm data encode`)")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"corrupt token cache index '{index_path}': {error}") from error
        if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
            raise ValueError(f"'{index_path}' is not a {CACHE_FORMAT} index")
        if index.get("version") != CACHE_VERSION:
            raise ValueError(f"token cache '{self.cache_dir}' has version {index.get('version')!r}; "
                             f"this tokenlm reads version {CACHE_VERSION}")
        _check_int(segment_frames, "segment_frames", 1)
        _check_int(seed, "seed", 0)
        if samples_per_epoch is not None:
            _check_int(samples_per_epoch, "samples_per_epoch", 1)
        self.index = index
        self.entries: list[dict[str, Any]] = index["entries"]
        if not self.entries:
            raise ValueError(f"token cache '{self.cache_dir}' has no entries")
        missing = [name for name in index["shards"] if not (self.cache_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(f"token cache '{self.cache_dir}' is missing shard file(s) {missing}")
        self.segment_frames = int(segment_frames)
        self.seed = int(seed)
        self.samples_per_epoch = samples_per_epoch
        self._handles: dict[int, Any] = {}
        self._offsets: dict[int, np.ndarray] = {}

    # ----------------------------------------------------------------------------------------- properties

    @property
    def codec_config(self) -> dict[str, Any]:
        """The cache's codec description (kind, bandwidth, rates, K, cardinality, weights fingerprint)."""
        return dict(self.index["codec"])

    @property
    def num_codebooks(self) -> int:
        """K."""
        return int(self.index["num_codebooks"])

    @property
    def cardinality(self) -> int:
        """Entries per codebook."""
        return int(self.index["cardinality"])

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return float(self.index["frame_rate"])

    def check_codec(self, codec: Codec, *, check_weights: bool = True) -> None:
        """Raise ValueError unless ``codec`` is the codec that wrote this cache.

        Compares kind, bandwidth, num_codebooks, cardinality, sample and frame rates and, with
        ``check_weights``, the weights' fingerprint (pass False for a codec cast to another dtype).
        """
        cached = self.codec_config
        given = {**codec.config(), "sample_rate": codec.sample_rate, "frame_rate": codec.frame_rate,
                 "num_codebooks": codec.num_codebooks, "cardinality": codec.cardinality}
        mismatched = []
        for key in ("kind", "bandwidth", "num_codebooks", "cardinality", "sample_rate", "frame_rate"):
            a, b = cached.get(key), given.get(key)
            numeric = isinstance(a, numbers.Real) and isinstance(b, numbers.Real)
            if not (math.isclose(a, b, rel_tol=1e-6) if numeric else a == b):
                mismatched.append(f"{key} {a!r} (cache) vs {b!r} (codec)")
        if mismatched:
            raise ValueError(f"token cache '{self.cache_dir}' was encoded with another codec: "
                             f"{'; '.join(mismatched)}; re-encode it with `tokenlm data encode`")
        if check_weights and cached.get("fingerprint") != codec_fingerprint(codec):
            raise ValueError(f"token cache '{self.cache_dir}' was encoded by a codec with the same configuration "
                             "but different weights; re-encode it with `tokenlm data encode`")

    # ------------------------------------------------------------------------------------------- sampling

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without open shard handles (DataLoader workers reopen them)."""
        state = dict(self.__dict__)
        state["_handles"], state["_offsets"] = {}, {}
        return state

    def _item_codes(self, entry: dict[str, Any], start: int, stop: int) -> torch.Tensor:
        """Frames ``[start, stop)`` of a cached item as int64 ``[K, stop - start]``."""
        shard = int(entry["shard"])
        if shard not in self._handles:
            path = self.cache_dir / self.index["shards"][shard]
            self._handles[shard] = safe_open(str(path), framework="pt")
            self._offsets[shard] = self._handles[shard].get_tensor("offsets").numpy()
        base = int(self._offsets[shard][int(entry["item"])])
        codes = self._handles[shard].get_slice("codes")[:, base + start : base + stop]  # [K, stop - start]
        if codes.shape[0] != self.num_codebooks:
            raise ValueError(f"shard {shard} of '{self.cache_dir}' holds {codes.shape[0]} codebooks, "
                             f"index.json says {self.num_codebooks}")
        return codes.long()

    def __len__(self) -> int:
        """``samples_per_epoch``, or the number of cached items."""
        return self.samples_per_epoch or len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index`` (any integer >= 0): ``{"codes": [K, T], "mask": [T], "attributes", "index", "source"}``,
        ``source`` being ``(audio path, start s, duration s)`` of the segment."""
        index = operator.index(index)
        if index < 0:
            raise IndexError(f"index must be >= 0, got {index}")
        rng = np.random.Generator(np.random.PCG64([self.seed, index]))
        entry = self.entries[int(rng.integers(len(self.entries)))]
        frames = int(entry["num_frames"])
        offset = int(rng.integers(frames - self.segment_frames + 1)) if frames > self.segment_frames else 0
        valid = min(frames, self.segment_frames)
        codes = torch.zeros(self.num_codebooks, self.segment_frames, dtype=torch.long)  # [K, T]
        codes[:, :valid] = self._item_codes(entry, offset, offset + valid)
        mask = torch.zeros(self.segment_frames, dtype=torch.bool)  # [T]
        mask[:valid] = True
        rate = self.frame_rate
        # where the segment's audio lies (conditioners that embed the training clip, e.g. CLAP train_on: audio,
        # read it from there: a token cache needs no waveform otherwise)
        source = (str(entry["path"]), float(entry.get("start", 0.0)) + offset / rate, valid / rate)
        return {"codes": codes, "mask": mask, "attributes": dict(entry["attributes"]), "index": index,
                "source": source}


def collate_codes(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack token items: ``{"codes": [B, K, T], "mask": [B, T], "attributes": list, "index": LongTensor [B]}``."""
    return collate_items(items, "codes", "code", "segment_frames")
