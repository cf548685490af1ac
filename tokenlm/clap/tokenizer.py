"""A byte-level BPE tokenizer trained on a data set's captions, saved as transformers' ``RobertaTokenizer`` (the
tokenizer class ``ClapProcessor`` expects), so a CLAP trained here needs no downloaded vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: RoBERTa's special tokens, in the id order its tokenizer and ``ClapTextModel`` (padding id 1) expect
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def train_caption_tokenizer(captions: Sequence[str], folder: str | Path, vocab_size: int = 1000,
                            max_length: int = 64):
    """Train a byte-level BPE of ``vocab_size`` tokens on ``captions``; write ``vocab.json`` / ``merges.txt`` to
    ``folder`` and return the ``RobertaTokenizer`` loaded from them (``model_max_length`` = ``max_length``)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    texts = [str(caption).strip() for caption in captions if str(caption).strip()]
    if not texts:
        raise ValueError("training a CLAP tokenizer needs captions; the training data has none")
    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + special tokens + merges), got {vocab_size}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS))
    bpe.save_model(str(folder))
    return RobertaTokenizer.from_pretrained(folder, model_max_length=max_length)
