"""Shared fixtures: a SentencePiece model and a tiny local T5 encoder folder, both built offline."""

import os

# Thread policy: tiny models run fastest on one thread, so OMP_NUM_THREADS defaults to 1, but a value already in
# the environment wins (a CI runner may set its own). Nothing in the suite depends on the thread count: a test that
# compares for exact equality compares two computations made in this same process, with the same thread count and
# so the same arithmetic; the tests that train in subprocesses give every process OMP_NUM_THREADS=1 explicitly.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from captions import CAPTIONS
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.captions import CAPTIONS

#: vocabulary size of the test SentencePiece model (the captions support at most ~108 pieces)
SPM_VOCAB_SIZE = 96


@pytest.fixture(scope="session")
def captions() -> list[str]:
    """The synthetic captions the tokenizer fixtures are trained on."""
    return list(CAPTIONS)


@pytest.fixture(scope="session")
def spm_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A unigram SentencePiece model (T5 ids: pad 0, eos 1, unk 2) trained on the synthetic captions."""
    from conditioners.text.sentencepiece import train_sentencepiece

    return train_sentencepiece(CAPTIONS, tmp_path_factory.mktemp("spm"), vocab_size=SPM_VOCAB_SIZE)


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory, spm_model_path: Path) -> Path:
    """A local Hugging Face folder with a tiny random T5 encoder and a T5 tokenizer over ``spm_model_path``.

    Loadable with ``AutoTokenizer.from_pretrained(dir)`` and ``T5EncoderModel.from_pretrained(dir)``.
    """
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    # transformers 5 builds a T5 tokenizer from a SentencePiece file only through from_pretrained on a
    # folder holding it as spiece.model; extra_ids=0 keeps the vocabulary equal to the SentencePiece one.
    spm_dir = tmp_path_factory.mktemp("t5_spm")
    (spm_dir / "spiece.model").write_bytes(spm_model_path.read_bytes())
    tokenizer = T5Tokenizer.from_pretrained(spm_dir, extra_ids=0)

    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = T5EncoderModel(config).eval()
    out = tmp_path_factory.mktemp("tiny_t5")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_tiny_backend(spm_model_path: Path, *, seed: int = 0, pattern: str = "delay", **lm_overrides):
    """A small, fully random LM backend: tiny EnCodec (16 kHz, 4 x 128), SentencePiece text, 2-layer LM."""
    from conditioners.text.sentencepiece import SentencePieceConditioner
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config
    from tokenlm.lm.backend import LMBackend
    from tokenlm.lm.model import LMConfig, LMModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        codec = EncodecCodec.from_config(tiny_encodec_config(), seed=seed)
        dim = lm_overrides.pop("dim", 32)
        text = SentencePieceConditioner(
            "description", dim, spm_model_path, dim=32, num_layers=1, num_heads=2, max_length=48, dropout=0.0
        )
        lm_args = dict(num_codebooks=4, cardinality=128, dim=dim, num_layers=2, num_heads=4, ffn_dim=64)
        lm = LMModel(LMConfig(**{**lm_args, **lm_overrides}))
        # random heads are nearly uniform; sharpen them so generated tokens depend visibly on the inputs
        lm.heads.data.mul_(40)
    backend = LMBackend(lm, codec, [text], pattern=pattern, max_duration=2.0, cfg_dropout=0.1)
    return backend.eval()


@pytest.fixture()
def tiny_backend(spm_model_path: Path):
    """A fresh random :class:`tokenlm.lm.backend.LMBackend` (2 s window, delay pattern)."""
    return make_tiny_backend(spm_model_path)


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``train.jsonl`` / ``valid.jsonl`` over 24 captioned 2.5 s clips (tones and noise, 16 kHz)."""
    import json

    import numpy as np

    from tokenlm.audio import write_audio

    folder = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * 2.5)) / 16000
    lines = []
    for i in range(24):
        freq = 200 + 100 * (i % 6)
        tone = i % 2 == 0
        wav = 0.3 * np.sin(2 * np.pi * freq * t) if tone else 0.1 * rng.standard_normal(len(t))
        write_audio(folder / f"clip{i}.wav", torch.tensor(wav, dtype=torch.float32)[None], 16000, normalize="peak")
        caption = f"a steady tone at {freq} hz" if tone else f"{['soft', 'loud'][i % 4 // 2]} white noise hiss"
        lines.append({"path": f"clip{i}.wav", "duration": 2.5, "sample_rate": 16000, "channels": 1,
                      "description": caption, "labels": {"frequency": freq if tone else None}})
    (folder / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "valid.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:8]))
    return folder


def build_tiny_clap(
    folder: Path, captions: list[str], *, sampling_rate: int, hop_length: int, fft_window_size: int,
    frequency_max: int, text_layers: int, max_positions: int,
) -> Path:
    """Write a tiny random ``ClapModel`` (seed 0) and its ``ClapProcessor`` (byte-level BPE tokenizer trained on
    ``captions``, feature extractor at ``sampling_rate``) to ``folder / "model"``, as ``save_pretrained`` does."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(captions, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizer.from_pretrained(folder)
    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=sampling_rate, hop_length=hop_length,
                                     max_length_s=1, fft_window_size=fft_window_size, truncation="rand_trunc",
                                     padding="repeatpad", frequency_min=50, frequency_max=frequency_max)
    audio = ClapAudioConfig(spec_size=64, num_mel_bins=16, window_size=4, patch_size=2, patch_stride=2, freq_ratio=2,
                            hidden_size=32, patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
                            projection_dim=16, intermediate_size=37, enable_fusion=False)
    text = ClapTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=text_layers,
                          num_attention_heads=2, intermediate_size=37, projection_dim=16,
                          max_position_embeddings=max_positions)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
    model_dir = folder / "model"
    model.eval().save_pretrained(model_dir)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local folder with a tiny random ``ClapModel`` and its ``ClapProcessor`` (48 kHz feature extractor,
    byte-level BPE tokenizer trained on the synthetic captions), as ``ClapModel.save_pretrained`` writes it."""
    return build_tiny_clap(tmp_path_factory.mktemp("tiny_clap"), CAPTIONS, sampling_rate=48000, hop_length=480,
                           fft_window_size=1024, frequency_max=14000, text_layers=2, max_positions=80)


def tiny_recipe_overrides(
    run_dir: Path, data: Path, steps: int, *extra: str, warmup_steps: int, settings: tuple[str, ...] = ()
) -> list[str]:
    """Recipe overrides for a few-step training run on a manifest folder (train.jsonl / valid.jsonl):
    the shared ones, ``settings`` after the warm-up, then ``extra``. The device is pinned to the CPU (the recipes'
    ``device: auto`` would pick a GPU where there is one); a GPU variant overrides it with ``device=cuda`` in
    ``extra`` and is marked ``gpu``."""
    return [
        f"run_dir={run_dir}", "data.synth=null", f"data.train={data / 'train.jsonl'}",
        f"data.valid={data / 'valid.jsonl'}", "data.segment_duration=1.0", "data.num_workers=0",
        f"solver.steps={steps}", "solver.batch_size=4", f"solver.warmup_steps={warmup_steps}", *settings,
        "log.tensorboard=false", "device=cpu", *extra,
    ]


def metrics(run_dir: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (a torn last line, from a kill mid-write, is left out)."""
    from tokenlm.train.state import read_metrics

    return read_metrics(run_dir / "metrics.jsonl")


@pytest.fixture(scope="session")
def tiny_encodec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face EnCodec folder of the tiny codec (16 kHz, 4 codebooks x 128 codes), seeded: what an
    audiocraft release's ``{"pretrained": "facebook/encodec_32khz"}`` compression package points at in tests."""
    from tokenlm.codecs.encodec import EncodecCodec, tiny_encodec_config

    folder = tmp_path_factory.mktemp("tiny_encodec")
    EncodecCodec.from_config(tiny_encodec_config(codebook_size=128, num_codebooks=4), seed=0).save_pretrained(folder)
    return folder
