"""Codec training: losses, the warm-up -> k-means -> RVQ schedule, the export that loads as an EnCodec folder with
the same codes and audio, the recipe through the trainer (exact resume), evaluation and bad input."""

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenlm.codecs import EncodecCodec
from tokenlm.codecs.training import CodecTrainee, CodecTrainingConfig, ReconstructionLoss, codec_config, si_snr
from tokenlm.eval.codec import evaluate_codec, format_report, round_trip
from tokenlm.train.main import compose_recipe, run

try:
    from conftest import metrics, tiny_recipe_overrides
except ImportError:
    from tests.conftest import metrics, tiny_recipe_overrides

TINY_ARCHITECTURE = dict(
    num_filters=4, hidden_size=16, codebook_size=64, num_codebooks=4, upsampling_ratios=(2, 4, 5, 8)
)


def tiny_trainee(**training) -> CodecTrainee:
    torch.manual_seed(0)
    defaults = dict(vq_start=3, kmeans_batches=2, kmeans_pool=512, kmeans_iters=2, latent_prob=0.0)
    return CodecTrainee(CodecTrainingConfig(encodec=codec_config(**TINY_ARCHITECTURE), **{**defaults, **training}))


def tone(freq: float = 440.0, seconds: float = 0.5, rate: int = 16000, amp: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return (amp * torch.sin(2 * math.pi * freq * t))[None, None]  # [1, 1, N]


# ----------------------------------------------------------------------------------------------- losses
def test_si_snr_is_scale_invariant_and_orders_noise_levels():
    ref = tone()
    assert si_snr(ref, ref) > 60
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(ref.shape, generator=generator)
    assert torch.allclose(si_snr(0.25 * (ref + 0.05 * noise), ref), si_snr(ref + 0.05 * noise, ref), atol=1e-4)
    low, high = si_snr(ref + 0.01 * noise, ref), si_snr(ref + 0.1 * noise, ref)
    # noise at -30.5 dB / -10.5 dB relative to a 0.3-amplitude sine (power 0.045)
    assert abs(float(low) - 10 * math.log10(0.045 / 1e-4)) < 1.0
    assert abs(float(high) - 10 * math.log10(0.045 / 1e-2)) < 1.0
    with pytest.raises(ValueError, match="equal shapes"):
        si_snr(ref, ref[..., :-1])


def test_reconstruction_loss_is_zero_on_identity_and_grows_with_pitch_error():
    loss = ReconstructionLoss(16000)
    ref = tone(440)
    same = loss(ref, ref)
    assert float(same["total"]) == pytest.approx(0.0, abs=1e-6)
    near, far = loss(tone(450), ref)["stft"], loss(tone(660), ref)["stft"]
    assert 0 < float(near) < float(far)
    silence = torch.zeros(2, 1, 8000)
    terms = loss(silence, silence.clone())
    assert all(torch.isfinite(v) for v in terms.values())  # silence gives no NaN (log floor, guarded division)


# ----------------------------------------------------------------------------------------------- schedule and export
def test_warm_up_pools_latents_then_kmeans_initialises_every_codebook():
    trainee = tiny_trainee().train()
    wav = torch.randn(4, 1, 3200) * 0.1
    for _ in range(3):
        out = trainee.compute_loss(wav)
        assert float(out["commit"]) == 0.0  # autoencoder warm-up: no quantiser yet
        assert not any(bool(layer._codebook.initted) for layer in trainee.quantizer.layers)
    assert int(trainee.clock.pool_count) == 2 * 4 * 10  # the last kmeans_batches=2 batches of 4 x 10 frames
    out = trainee.compute_loss(wav)
    assert all(bool(layer._codebook.initted) for layer in trainee.quantizer.layers)
    assert float(out["commit"]) > 0 and torch.isfinite(out["loss"])
    # k-means ran on the pooled warm-up latents: the first codebook's entries lie among them
    pooled = trainee.clock.pooled()
    nearest = torch.cdist(trainee.codebooks()[0], pooled).min(dim=1).values
    assert float(nearest.median()) < float(pooled.std())


def test_export_codes_and_decodes_exactly_as_the_training_time_model(tmp_path):
    trainee = tiny_trainee().train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):  # k-means on 2 x 320 vectors for 64 codes: no duplicate entries, so no tied distances
        trainee.compute_loss(torch.randn(8, 1, 12800, generator=generator))
    trainee.eval()
    trainee.export_pretrained(tmp_path / "codec")
    config = json.loads((tmp_path / "codec" / "config.json").read_text())
    assert config["model_type"] == "encodec" and config["codebook_size"] == 64
    wav = torch.randn(2, 1, 4800, generator=generator)
    for bandwidth, count in ((0.3, 1), (0.6, 2), (1.2, 4)):
        codec = EncodecCodec.from_pretrained(tmp_path / "codec", bandwidth=bandwidth)
        assert codec.num_codebooks == count and codec.cardinality == 64 and codec.frame_rate == 50
        codes = codec.encode(wav)
        expected = trainee.encode(wav, num_codebooks=count)
        assert torch.equal(codes, expected)
        assert torch.allclose(codec.decode(codes), trainee.decode(expected), atol=1e-5)
    latent = codec.encode_latent(wav)
    assert torch.allclose(latent, trainee.encoder(wav), atol=1e-6)


def test_spectral_losses_ramp_in_after_the_time_domain_warm_up():
    trainee = tiny_trainee(spectral_from=2, spectral_full=6).train()
    assert [trainee.spectral_scale(step) for step in (0, 2, 4, 6, 9)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    wav = torch.randn(2, 1, 3200) * 0.1
    early = trainee.compute_loss(wav)
    assert float(early["mel"]) == 0 and float(early["stft"]) == 0 and float(early["loss"]) == pytest.approx(
        float(early["l1"]))
    assert trainee.eval().spectral_scale(0) == 1.0  # validation scores the whole objective


def test_export_before_the_codebooks_exist_is_refused():
    with pytest.raises(RuntimeError, match="not initialised"):
        tiny_trainee().export_model()


def test_a_codec_folder_without_trained_codebooks_is_refused_by_name(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import EncodecConfig, EncodecModel

    EncodecModel(EncodecConfig(**codec_config(**TINY_ARCHITECTURE))).save_pretrained(tmp_path / "zeros")
    with pytest.raises(ValueError, match=r"codebook 0 is untrained or missing"):
        EncodecCodec.from_pretrained(tmp_path / "zeros")
    trainee = tiny_trainee().train()
    for _ in range(4):
        trainee.compute_loss(torch.randn(4, 1, 3200) * 0.1)
    trainee.export_pretrained(tmp_path / "partial")
    weights = load_file(tmp_path / "partial" / "model.safetensors")
    del weights["quantizer.layers.2.codebook.embed"]
    save_file(weights, tmp_path / "partial" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"'.*partial': codebook 2 is untrained or missing"):
        EncodecCodec.from_pretrained(tmp_path / "partial")


# ----------------------------------------------------------------------------------------------- the recipe
def codec_overrides(run_dir: Path, data: Path, steps: int, *extra: str) -> list[str]:
    arch = [f"codec.architecture.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_ARCHITECTURE.items()]
    return [
        *tiny_recipe_overrides(run_dir, data, steps, warmup_steps=1), "recipe=demo_codec", *arch,
        "codec.training.vq_start=3", "codec.training.kmeans_batches=2", "codec.training.kmeans_iters=2",
        "codec.training.kmeans_pool=512", "codec.training.spectral_from=1", "codec.training.spectral_full=3",
        "data.segment_duration=0.4", "checkpoint.every=2", "valid.every=0",
        *extra,
    ]


def test_demo_codec_recipe_composes_with_its_documented_setup():
    cfg = compose_recipe(["recipe=demo_codec"])
    assert cfg["backend"] == "codec" and cfg["conditioners"] == []
    assert cfg["codec"]["architecture"]["codebook_size"] == 1024 and cfg["codec"]["architecture"]["num_codebooks"] == 8
    assert cfg["data"]["synth"]["preset"] == "sfx16k"


def test_codec_recipe_trains_and_exports_an_encodec_folder(tmp_path, tiny_manifest):
    export = run(codec_overrides(tmp_path / "run", tiny_manifest, 6))
    codec = EncodecCodec.from_pretrained(export, bandwidth=1.2)
    assert codec.num_codebooks == 4 and codec.sample_rate == 16000
    records = [m for m in metrics(tmp_path / "run") if "loss" in m]
    assert [m["step"] for m in records] == [1, 2, 3, 4, 5, 6]
    assert all(m["commit"] == 0 for m in records[:3]) and all(m["commit"] > 0 for m in records[3:])
    assert all(m["audio_seconds_per_s"] > 0 for m in records)  # the recipe's throughput, audio s per s
    assert records[0]["mel"] == 0 and records[0]["stft"] == 0 and all(m["mel"] > 0 for m in records[2:])
    # the run's newest checkpoint exports the same codec (EMA weights, the live codebooks)
    again = CodecTrainee.from_run(tmp_path / "run").to_codec(bandwidth=1.2)
    wav = tone(330, 0.4)
    assert torch.equal(codec.encode(wav), again.encode(wav))


@pytest.mark.slow
def test_codec_training_resumes_exactly_after_sigterm_during_the_kmeans_pooling(tmp_path, tiny_manifest):
    from test_train import _finish, _train_process, train_losses

    common = ["codec.training.vq_start=5", "codec.training.kmeans_batches=3", "checkpoint.every=1"]
    _finish(_train_process(codec_overrides(tmp_path / "straight", tiny_manifest, 10, *common)))
    reference = train_losses(tmp_path / "straight")
    interrupted = codec_overrides(tmp_path / "cut", tiny_manifest, 10, *common)
    process = _train_process(interrupted)
    while process.poll() is None:
        if (tmp_path / "cut" / "metrics.jsonl").is_file() and len(train_losses(tmp_path / "cut")) >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert len(train_losses(tmp_path / "cut")) < 10, "the run finished before it could be interrupted"
    _finish(_train_process(interrupted + ["resume=true"]))
    resumed = train_losses(tmp_path / "cut")
    assert sorted(resumed) == list(range(1, 11))
    for step in range(1, 11):
        assert resumed[step] == pytest.approx(reference[step], abs=1e-6), step


def test_silence_and_clipping_train_with_finite_losses_and_nan_audio_is_flagged_not_hidden():
    """Silence and full-scale clipping give finite losses; NaN audio gives a non-finite loss, which the trainer
    skips and counts (``solver.max_nonfinite``) as it does for the LM."""
    trainee = tiny_trainee().train()
    bad = torch.full((2, 1, 3200), float("nan"))
    assert not torch.isfinite(trainee.compute_loss(bad)["loss"])
    clipped = torch.sign(torch.randn(2, 1, 3200))  # full-scale square wave: clipping everywhere
    assert torch.isfinite(trainee.compute_loss(clipped)["loss"])
    assert torch.isfinite(trainee.compute_loss(torch.zeros(2, 1, 3200))["loss"])


# ----------------------------------------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def synth_clips(tmp_path_factory) -> Path:
    """Twelve synthetic captioned clips of 1-1.5 s (labels the detectors check), and their manifests."""
    from tokenlm.data.synth import generate_dataset

    folder = tmp_path_factory.mktemp("synth")
    generate_dataset(folder, 12, seed=3, duration=(1.0, 1.5), families=["tone", "noise"])
    return folder


def test_evaluate_codec_reports_every_bandwidth_and_writes_the_reconstructions(tmp_path, synth_clips):
    trainee = tiny_trainee().train()
    for _ in range(5):
        trainee.compute_loss(torch.randn(4, 1, 3200) * 0.1)
    codec = trainee.eval().to_codec()
    report = evaluate_codec(codec, synth_clips / "train.jsonl", limit=6, out_dir=tmp_path / "recon")
    assert set(report["bandwidths"]) == {"0.3", "0.6", "1.2"} and report["clips"] == 6
    band = report["bandwidths"]["1.2"]
    assert band["codebooks"] == 4 and band["seconds_per_second"] > 0 and np.isfinite(band["si_snr_db"])
    tones = sum(1 for line in (synth_clips / "train.jsonl").read_text().splitlines()[:6] if '"pitch_hz"' in line)
    assert band["alignment"].get("pitch", {"n": 0})["n"] == tones and "overall" in band["alignment"]
    # the original clips are the detectors' own ceiling: they match their captions
    assert report["reference_alignment"]["overall"] >= 0.9
    assert len(list((tmp_path / "recon" / "1.2").glob("*.wav"))) == 6
    table = format_report(report)
    assert table.splitlines()[0].startswith("| codebooks | kbps") and "| 4 | 1.2 |" in table


def test_round_trip_resamples_other_rates_and_keeps_the_length():
    trainee = tiny_trainee().train()
    for _ in range(4):
        trainee.compute_loss(torch.randn(4, 1, 3200) * 0.1)
    codec = trainee.eval().to_codec()
    out = round_trip(codec, tone(440, 0.5, rate=22050)[0, 0].numpy(), 22050)
    assert out.shape == (8000,) and np.isfinite(out).all()
    with pytest.raises(ValueError, match=r"mono clip shaped \[N\]"):
        round_trip(codec, np.zeros((2, 100), np.float32), 16000)


def test_readme_codec_commands(tmp_path, monkeypatch):
    """The README's codec commands, run as written on a small data set, a tiny architecture and few steps."""
    import re
    import shlex

    from tokenlm import cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "recipe=demo_codec" in b)
    monkeypatch.chdir(tmp_path)
    arch = [f"codec.architecture.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_ARCHITECTURE.items()]
    arch = [a for a in arch if "codebook_size" not in a and "num_codebooks" not in a]  # keep 8 x 1024: 2.0 kbps = 4
    for line in block.strip().splitlines():
        argv = shlex.split(line.split("#")[0])
        if argv[1:3] == ["train", "recipe=demo_codec"]:
            argv += ["solver.steps=6", "data.synth.n=30", "data.synth.workers=2", "solver.batch_size=4", *arch,
                     "codec.training.vq_start=3", "codec.training.kmeans_batches=2", "codec.training.kmeans_iters=2",
                     "codec.training.spectral_from=1", "codec.training.spectral_full=2", "checkpoint.every=3",
                     "valid.every=0", "log.tensorboard=false"]
        elif argv[1] == "train":
            argv += ["solver.steps=2", "solver.batch_size=2", "log.tensorboard=false", "data.synth.n=12",
                     "data.synth.duration=1.0", "data.segment_duration=1.0", "model.dim=32", "model.num_layers=1",
                     "model.ffn_dim=64", "model.num_heads=2"]
        assert cli.main(argv[1:]) == 0, line
    codec = EncodecCodec.from_pretrained(tmp_path / "my_codec", bandwidth=2.0)
    assert codec.num_codebooks == 4 and codec.cardinality == 1024
    lm_config = json.loads((tmp_path / "runs" / "lm_my_codec" / "export" / "config.json").read_text())
    assert lm_config["codec"]["bandwidth"] == 2.0
