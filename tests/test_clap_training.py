"""A CLAP trained here: the caption tokenizer, the contrastive loss, training through the recipe trainer (export
as a plain ClapModel folder that the conditioner, the eval's CLAP embedder and `tokenlm retrieval` load), resume,
and the errors of caption-less data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tokenlm.clap import ClapTrainee, ClapTrainingConfig, train_caption_tokenizer
from tokenlm.train.main import run

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from captions import CAPTIONS
    from conftest import metrics, tiny_recipe_overrides
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.captions import CAPTIONS
    from tests.conftest import metrics, tiny_recipe_overrides

TINY_AUDIO = {"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "patch_size": 2, "patch_stride": 2,
              "hidden_size": 32, "patch_embeds_hidden_size": 16, "depths": [1, 1], "num_attention_heads": [2, 2],
              "enable_fusion": False}
TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 40}
TINY_FEATURES = {"feature_size": 16, "sampling_rate": 16000, "hop_length": 160, "fft_window_size": 512,
                 "max_length_s": 1, "frequency_min": 50, "frequency_max": 8000, "padding": "repeatpad",
                 "truncation": "rand_trunc"}


def tiny_config(**overrides) -> ClapTrainingConfig:
    return ClapTrainingConfig(audio=dict(TINY_AUDIO), text=dict(TINY_TEXT), features=dict(TINY_FEATURES),
                              projection_dim=16, vocab_size=300, max_length=32, **overrides)


def hydra_value(value) -> str:
    """``value`` in Hydra's override grammar (``{key:value,...}``, ``[a,b]``, ``true``)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, bool) else str(value)


def tiny_clap_overrides(run_dir: Path, data: Path, steps: int, *extra: str) -> list[str]:
    """``recipe=demo_clap`` shrunk to the tiny model, 1 s segments and batches of 8."""
    sections = {"audio": TINY_AUDIO, "text": TINY_TEXT, "features": TINY_FEATURES}
    clap = [f"+clap.{name}={hydra_value(value)}" for name, value in sections.items()]
    return ["recipe=demo_clap", *tiny_recipe_overrides(run_dir, data, steps, warmup_steps=2, settings=(
        "solver.batch_size=8", "clap.vocab_size=300", "clap.max_length=32", "clap.projection_dim=16",
        "checkpoint.every=3", "solver.lr=0.003", "valid.every=0", "solver.ema_decay=0.5",
    )), *clap, *extra]


def tones(frequencies: list[float], seconds: float = 1.0, rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) for f in frequencies])[:, None]  # [B, 1, N]


def test_caption_tokenizer(tmp_path: Path) -> None:
    tokenizer = train_caption_tokenizer(CAPTIONS * 3, tmp_path / "tok", vocab_size=300, max_length=16)
    ids = tokenizer(["a steady tone at 300 hz"])["input_ids"][0]
    assert ids[0] == tokenizer.cls_token_id == 0 and ids[-1] == tokenizer.sep_token_id == 2
    assert tokenizer.pad_token_id == 1 and len(tokenizer) <= 300
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a steady tone at 300 hz"
    with pytest.raises(ValueError, match="needs captions"):
        train_caption_tokenizer(["", "  "], tmp_path / "none")
    with pytest.raises(ValueError, match="vocab_size must be >= 300"):
        train_caption_tokenizer(CAPTIONS, tmp_path / "small", vocab_size=100)


def test_contrastive_loss_is_symmetric_infonce_over_caption_positives(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainee = ClapTrainee.build(tiny_config(), CAPTIONS * 3, tmp_path).eval()  # eval: no dropout
    wav = tones([220.0, 440.0, 880.0, 450.0])
    captions = ["a low tone", "a tone at 440 hz", "a high tone", "a  Tone at 440 HZ"]  # rows 1 and 3: same text
    attributes = [{"description": c} for c in captions]
    losses = trainee.compute_loss(wav, None, attributes)
    audio, text = trainee.embed_audio(wav), trainee.embed_text(captions)
    assert torch.allclose(audio.norm(dim=-1), torch.ones(4)) and torch.allclose(text.norm(dim=-1), torch.ones(4))
    positive = torch.eye(4)
    positive[1, 3] = positive[3, 1] = 1
    targets = positive / positive.sum(-1, keepdim=True)
    scale = 1 / 0.07
    logits = scale * text @ audio.T
    expected = (-(targets * F.log_softmax(logits, 1)).sum(1).mean() - (targets * F.log_softmax(logits.T, 1)).sum(1)
                .mean()) / 2
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["logit_scale"].item() == pytest.approx(scale, rel=1e-5)
    # plain InfoNCE treats the repeated caption as a negative
    plain = ClapTrainee(tiny_config(positives="index"), trainee.processor, trainee.model).eval()
    one_hot = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
    assert plain.compute_loss(wav, None, attributes)["loss"].item() == pytest.approx(one_hot.item(), rel=1e-5)
    assert torch.equal(trainee.positives(captions), positive.bool())
    assert torch.equal(plain.positives(captions), torch.eye(4, dtype=torch.bool))
    # the temperature is capped at logit_scale_max
    with torch.no_grad():
        trainee.model.logit_scale_t.fill_(10.0)
    assert trainee.compute_loss(wav, None, attributes)["logit_scale"].item() == pytest.approx(100.0)
    # the mask keeps only the valid samples: a clip padded with silence embeds like the clip alone
    padded = torch.cat([wav, torch.zeros(4, 1, 8000)], -1)
    mask = torch.zeros(4, 24000, dtype=torch.bool)
    mask[:, :16000] = True
    assert torch.allclose(trainee.embed_audio(padded, mask), audio, atol=1e-5)


def test_contrastive_loss_errors(tmp_path: Path) -> None:
    trainee = ClapTrainee.build(tiny_config(), CAPTIONS, tmp_path)
    wav = tones([220.0, 440.0])
    with pytest.raises(ValueError, match=r"caption \('description'\) for every clip; batch rows \[1\] have none"):
        trainee.compute_loss(wav, None, [{"description": "a tone"}, {"description": " "}])
    with pytest.raises(ValueError, match="no condition dropout"):
        trainee.compute_loss(wav, None, [{"description": "a"}, {"description": "b"}], torch.tensor([True, False]))
    with pytest.raises(ValueError, match=">= 2 clips"):
        trainee.compute_loss(wav[:1], None, [{"description": "a"}])
    with pytest.raises(ValueError, match=r"mono \[B, 1, N\]"):
        trainee.embed_audio(wav[:, 0])
    with pytest.raises(ValueError, match="positives must be one of"):
        tiny_config(positives="labels")
    with pytest.raises(ValueError, match="CLAP training needs captions"):
        ClapTrainee.build(tiny_config(), [], tmp_path / "none")


def test_clap_trains_from_the_recipe_and_exports_a_clap_model_folder(tmp_path: Path, tiny_manifest: Path) -> None:
    from conditioners.clap import ClapConditioner
    from tokenlm.eval.embedders.clap import ClapEmbedder

    out = run(tiny_clap_overrides(tmp_path / "run", tiny_manifest, 30))
    logged = [m for m in metrics(tmp_path / "run") if "loss" in m]
    assert len(logged) == 30
    first, last = np.mean([m["loss"] for m in logged[:5]]), np.mean([m["loss"] for m in logged[-5:]])
    assert last < first - 0.3, (first, last)  # it learns (the tiny set holds 12 tones and 12 noises)
    # a plain ClapModel + ClapProcessor folder: what every CLAP consumer loads
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    embedder = ClapEmbedder.from_pretrained(out)
    conditioner = ClapConditioner("description", None, out, train_on="audio")
    trainee = ClapTrainee.from_pretrained(tmp_path / "run" / "init")  # the untrained model
    wav = tones([300.0])
    exported = embedder.embed(wav[0, 0])
    assert exported.shape == (1, 16)
    assert torch.allclose(conditioner.encode(["a steady tone at 300 hz"]).embeds[0, 0].float(),
                          torch.from_numpy(embedder.embed_texts(["a steady tone at 300 hz"])[0]).float(), atol=1e-5)
    assert not torch.allclose(trainee.embed_audio(wav), exported, atol=1e-3)  # the export holds trained weights
    # shipped as an asset: float16 on disk, read back as float32, embedding like the export
    from safetensors.torch import load_file

    from tokenlm.cli import main

    assert main(["assets", "pack", str(out), "--name", "clap_tiny", "--assets-dir", str(tmp_path)]) == 0
    stored = load_file(str(tmp_path / "clap_tiny" / "model.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    packed = ClapEmbedder.from_pretrained(tmp_path / "clap_tiny")
    assert next(packed.model.parameters()).dtype == torch.float32
    assert F.cosine_similarity(packed.embed(wav[0, 0]), exported).item() > 0.999


def test_clap_training_resumes_exactly(tmp_path: Path, tiny_manifest: Path, monkeypatch) -> None:
    from safetensors.torch import load_file

    run(tiny_clap_overrides(tmp_path / "full", tiny_manifest, 6))
    monkeypatch.setenv("TOKENLM_SIGNAL_AFTER_STEP", "3:SIGTERM")  # the trainer checkpoints after step 3 and stops
    run(tiny_clap_overrides(tmp_path / "sig", tiny_manifest, 6))
    monkeypatch.delenv("TOKENLM_SIGNAL_AFTER_STEP")
    assert not (tmp_path / "sig" / "export").exists()
    run([*tiny_clap_overrides(tmp_path / "sig", tiny_manifest, 6), "resume=true"])
    a = load_file(str(tmp_path / "full" / "export" / "model.safetensors"))
    b = load_file(str(tmp_path / "sig" / "export" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [[m["loss"] for m in metrics(tmp_path / name) if "loss" in m] for name in ("full", "sig")]
    assert losses[0] == losses[1]


def test_caption_less_manifest_trains_a_clap_audio_model_but_not_a_clap(
    tmp_path: Path, tiny_manifest: Path, tiny_clap_dir: Path
) -> None:
    for name in ("train.jsonl", "valid.jsonl"):
        lines = [json.loads(line) for line in (tiny_manifest / name).read_text().splitlines() if line]
        for line in lines:
            line["path"] = str(tiny_manifest / line["path"])
            del line["description"]
        (tmp_path / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ValueError, match="CLAP training needs captions.*demo_ldm_clap"):
        run(tiny_clap_overrides(tmp_path / "run", tmp_path, 2))
    # AudioLDM's point: a model conditioned on CLAP audio embeddings needs no caption to train
    out = run(["conditioner=clap_audio", f"conditioners.0.params.model_path={tiny_clap_dir}",
               *tiny_recipe_overrides(tmp_path / "audio_run", tmp_path, 2, warmup_steps=1)])
    assert len([m for m in metrics(tmp_path / "audio_run") if "loss" in m]) == 2
    from tokenlm import TextToAudio

    assert TextToAudio.from_pretrained(out).generate(["a steady tone"], 0.2, seed=0).wav.shape == (1, 1, 3200)


def test_readme_clap_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's CLAP commands, run as written on a small data set, the tiny architecture and a few steps (the
    pack line writes to a scratch assets folder, not the package)."""
    import re
    import shlex

    from tokenlm import TextToAudio
    from tokenlm.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "recipe=demo_clap" in b)
    monkeypatch.chdir(tmp_path)
    data = ["data.synth.n=40", "data.synth.workers=1", "data.synth.duration=1.0", "data.segment_duration=1.0",
            "log.tensorboard=false", "checkpoint.every=0", "valid.every=0", "solver.batch_size=4", "solver.steps=2"]
    tiny = [a for a in tiny_clap_overrides(tmp_path, tmp_path, 2) if a.startswith(("+clap.", "clap."))]
    dit = ["model.dim=32", "model.num_layers=2", "model.num_heads=2", "model.cond_dim=32", "model.adaln_rank=4",
           "model.stats_items=4", "conditioners.0.params.model_path=runs/demo_clap/export"]
    lines = [line.split("#")[0] for line in block.strip().splitlines()]
    assert len(lines) == 5
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[:2] == ["train", "recipe=demo_clap"]:
            argv += [*data, *tiny]
        elif argv[:2] == ["train", "recipe=demo_ldm_clap"]:
            argv += [*data, *dit]
        elif argv[:2] == ["assets", "pack"]:
            argv += ["--assets-dir", str(tmp_path)]
        elif argv[0] == "eval":
            argv += ["--limit", "2", "--duration", "0.5"]
        assert main(argv) == 0, line
    retrieval = json.loads((tmp_path / "retrieval.json").read_text())
    assert retrieval["clips"] >= 2 and 0 <= retrieval["matched"]["t2a_r@10"] <= 1
    standard = json.loads((tmp_path / "eval_clap" / "report.json").read_text())["metrics"]
    assert -1 <= standard["clap_score"] <= 1 and -1 <= standard["clap_score_shuffled"] <= 1
    assert (tmp_path / "clap_sfx16k" / "model.safetensors").is_file()
    model = TextToAudio.from_pretrained(tmp_path / "runs" / "demo_ldm_clap" / "export")
    assert model.backend.conditioning.conditioners["description"].train_on == "audio"
    assert model.generate(["three short beeps"], 0.5, seed=0).wav.shape == (1, 1, 8000)


def test_shipped_clap_matches_synthetic_clips_to_their_captions() -> None:
    """The shipped CLAP (tokenlm/assets/clap_sfx16k), by its asset name: 24 freshly rendered clips are retrieved
    from their captions (R@1 0.96 when shipped) and their real pairs score far above shuffled ones (0.90 / 0.04)."""
    from tokenlm.data.synth import make_clip
    from tokenlm.eval.embedders import load_embedder
    from tokenlm.eval.retrieval import retrieval_report

    rng = np.random.default_rng(0)
    clips = [make_clip(rng, "sfx16k", duration=4.0) for _ in range(24)]  # (wav, rate, caption, labels)
    clap = load_embedder("clap", "clap_sfx16k")
    assert next(clap.model.parameters()).dtype == torch.float32  # stored in fp16, computed in fp32
    audio = np.concatenate([frames.mean(0, keepdims=True) for frames in clap.embed_clips([c[:2] for c in clips])])
    captions = [c[2] for c in clips]
    report = retrieval_report(clap.embed_texts(captions), audio, captions, [c[3] for c in clips])
    assert report["matched"]["t2a_r@1"] >= 0.8 and report["matched"]["a2t_r@5"] >= 0.9
    assert report["paired_cosine"] > report["shuffled_cosine"] + 0.6


def test_shipped_assets_fit_the_budget() -> None:
    """Everything under tokenlm/assets/ (codec, LM, LDM, CLAP, the instrument-family detector) stays within the
    80 MB the package may ship."""
    from tokenlm.common.assets import ASSETS_DIR

    size = sum(path.stat().st_size for path in ASSETS_DIR.rglob("*") if path.is_file() and "__pycache__" not in
               path.parts)
    assert size <= 80_000_000, f"{size / 1e6:.2f} MB of assets"
