"""An on-disk cache of frozen-encoder outputs keyed by text, so captions are encoded once, not every epoch.

Entries hold the encoder's output *before* any trainable projection, one ``.safetensors`` file per text,
under a namespace that fingerprints the encoder (its weights and the encoding options): changing the
encoder or the options never reads stale embeddings.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def module_fingerprint(module: nn.Module, *extra: object) -> str:
    """A SHA-256 hex digest of a module's state (names, shapes, dtypes, values) and ``extra`` options."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(repr(extra).encode())
    return digest.hexdigest()


class EmbeddingCache:
    """Text -> tensor store on disk.

    Args:
        directory: the cache folder (created when missing); several encoders can share it.
        namespace: identifies the encoder and its options (e.g. :func:`module_fingerprint`).

    Example:
        >>> cache = EmbeddingCache("/tmp/emb", "minilm-abc123")  # doctest: +SKIP
        >>> cache.store("a dog barks", torch.zeros(5, 384)); cache.load("a dog barks").shape  # doctest: +SKIP
        torch.Size([5, 384])
    """

    def __init__(self, directory: str | Path, namespace: str) -> None:
        self.directory = Path(directory).expanduser()
        self.namespace = namespace
        self.hits = 0
        self.misses = 0

    def path(self, text: str) -> Path:
        key = hashlib.sha256(f"{self.namespace}\0{text}".encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.safetensors"

    def load(self, text: str) -> torch.Tensor | None:
        """The cached tensor of ``text`` (on CPU), or None when it is not cached yet."""
        path = self.path(text)
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return load_file(str(path))["embeds"]

    def store(self, text: str, tensor: torch.Tensor) -> None:
        """Write ``tensor`` for ``text`` atomically (temporary file, then rename)."""
        path = self.path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({"embeds": tensor.detach().cpu().contiguous()}, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
