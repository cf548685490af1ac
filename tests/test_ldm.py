"""The latent-diffusion backend: DiT, diffusers-based sampling, API, training, editing."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import metrics, tiny_recipe_overrides

from tokenlm.api import TextToAudio
from tokenlm.ldm.backend import LDMBackend
from tokenlm.ldm.diffusion import make_scheduler, rescale_cfg, v_target
from tokenlm.ldm.dit import DiT, DiTConfig

SR = 16000


def make_ldm(spm_model_path: Path, seed: int = 0, timing: bool = False, **dit_overrides) -> LDMBackend:
    """A tiny random diffusion backend: tiny EnCodec latent (32-dim, 50 Hz), SentencePiece text, 3-layer DiT."""
    from conditioners.text.sentencepiece import SentencePieceConditioner
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        codec = EncodecCodec.from_config(tiny_encodec_config(), seed=seed)
        text = SentencePieceConditioner(
            "description", 32, spm_model_path, dim=32, num_layers=1, num_heads=2, max_length=48, dropout=0.0
        )
        args = dict(latent_dim=codec.latent_dim, dim=32, num_layers=3, num_heads=2, cond_dim=32, adaln_rank=4)
        dit = DiT(DiTConfig(**{**args, **dit_overrides}))
        for block in dit.blocks:  # give the zero-initialised condition path weights, as training would
            torch.nn.init.normal_(block.cross.out.weight, std=0.2)
        conditioners = [text]
        if timing:
            from conditioners.timing import TimingConditioner

            conditioners.append(TimingConditioner("seconds_total", 32, max_seconds=4))
    return LDMBackend(dit, codec, conditioners, max_duration=2.0, cfg_dropout=0.1).eval()


@pytest.fixture()
def ldm(spm_model_path: Path) -> LDMBackend:
    return make_ldm(spm_model_path)


def tiny_dit(**overrides) -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(**{**dict(latent_dim=8, dim=32, num_layers=4, num_heads=2, cond_dim=16,
                                   adaln_rank=4), **overrides})).eval()


def condition(seed: int):
    from conditioners.base import Condition

    g = torch.Generator().manual_seed(seed)
    return Condition(torch.randn(2, 5, 16, generator=g), torch.ones(2, 5, dtype=torch.bool))


def test_dit_shapes_and_zero_condition_path_at_init():
    dit = tiny_dit()
    x, t = torch.randn(2, 8, 20), torch.tensor([10, 900])
    out = dit(x, t, condition(0))
    assert out.shape == (2, 8, 20) and torch.isfinite(out).all()
    # cross-attention's output projection starts at zero: the condition adds the zero vector at init
    assert torch.equal(out, dit(x, t, condition(1))) and torch.equal(out, dit(x, t, None))
    assert not torch.allclose(out, dit(x, torch.tensor([500, 500]), condition(0)))  # the timestep matters


@pytest.mark.parametrize("option", ["adaln_sola", "long_skip", "rope", "qk_norm"])
def test_each_switch_off_changes_the_output(option):
    base = tiny_dit()
    for block in base.blocks:  # non-trivial SOLA corrections and norms, so switching them off shows
        torch.nn.init.normal_(block.adaln[-1].weight, std=0.1)
        for norm in (block.attn.q_norm, block.attn.k_norm):
            torch.nn.init.normal_(norm.weight, mean=1.0, std=0.5)
    variant = tiny_dit(**{option: False})
    shared = {k: v for k, v in base.state_dict().items()
              if k in variant.state_dict() and variant.state_dict()[k].shape == v.shape}
    variant.load_state_dict(shared, strict=False)
    x, t = torch.randn(2, 8, 20), torch.tensor([10, 900])
    assert not torch.allclose(base(x, t, condition(0)), variant(x, t, condition(0)), atol=1e-5)


def test_guidance_rescale_matches_diffusers():
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

    g = torch.Generator().manual_seed(0)
    guided, cond = torch.randn(3, 8, 20, generator=g) * 3, torch.randn(3, 8, 20, generator=g)
    for phi in (0.0, 0.75, 1.0):
        torch.testing.assert_close(rescale_cfg(guided, cond, phi), rescale_noise_cfg(guided, cond, phi))


@pytest.mark.parametrize("kind", ["ddim", "dpmpp"])
def test_scheduler_is_zero_snr_v_prediction_with_trailing_steps(kind):
    scheduler = make_scheduler(kind)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.rescale_betas_zero_snr
    scheduler.set_timesteps(50)
    assert int(scheduler.timesteps[0]) == 999  # trailing: the first step sees the zero-SNR timestep
    ddim = make_scheduler("ddim")
    assert float(ddim.alphas_cumprod[-1]) == 0.0
    x0, noise, t = torch.randn(4, 8, 10), torch.randn(4, 8, 10), torch.tensor([0, 250, 700, 999])
    a = ddim.alphas_cumprod[t][:, None, None]
    torch.testing.assert_close(ddim.add_noise(x0, noise, t), a.sqrt() * x0 + (1 - a).sqrt() * noise)
    torch.testing.assert_close(v_target(ddim, x0, noise, t), a.sqrt() * noise - (1 - a).sqrt() * x0)
    assert torch.equal(ddim.add_noise(x0, noise, t)[-1], noise[-1])  # zero SNR: pure noise at t = 999


def test_generate_is_seeded_and_survives_save_and_load(ldm, tmp_path):
    model = TextToAudio(ldm)
    a = model.generate(["a dog barks", "white noise"], 0.5, steps=6, seed=3)
    assert a.wav.shape == (2, 1, 8000) and a.sample_rate == SR and torch.isfinite(a.wav).all()
    assert torch.equal(a.wav, model.generate(["a dog barks", "white noise"], 0.5, steps=6, seed=3).wav)
    assert not torch.equal(a.wav, model.generate(["a dog barks", "white noise"], 0.5, steps=6, seed=4).wav)
    torch.manual_seed(1)
    ldm.normalizer.fit(torch.randn(3, 32, 40) * 2 + 1)  # statistics travel in the checkpoint
    before = model.generate("a dog barks", 0.5, steps=4, seed=0, scheduler="dpmpp", cfg_rescale=0.0)
    loaded = TextToAudio.from_pretrained(model.save_pretrained(tmp_path / "ckpt"), dtype="float32")
    assert torch.equal(loaded.backend.normalizer.std, ldm.normalizer.std)
    assert torch.equal(before.wav, loaded.generate("a dog barks", 0.5, steps=4, seed=0, scheduler="dpmpp",
                                                   cfg_rescale=0.0).wav)


def test_guidance_and_rescale_change_the_output(ldm):
    model = TextToAudio(ldm)
    calls = []
    model.generate("a dog", 0.3, steps=4, progress=True, callback=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    outs = [model.generate("a dog", 0.3, steps=4, seed=0, cfg_coef=c, cfg_rescale=r).wav
            for c, r in ((1.0, 0.0), (5.0, 0.0), (5.0, 0.75))]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


def test_sampling_arguments_of_the_other_backend_are_refused(ldm, tiny_backend):
    with pytest.raises(ValueError, match=r"\['top_k', 'temperature'\] do not apply to the 'ldm' backend"):
        TextToAudio(ldm).generate("a dog", 0.3, top_k=10, temperature=0.5)
    with pytest.raises(ValueError, match="prompt_audio belongs to token backends"):
        TextToAudio(ldm).generate("a dog", 0.3, prompt_audio=torch.zeros(1, 100), prompt_sample_rate=SR)
    with pytest.raises(ValueError, match=r"\['steps', 'cfg_rescale'\] do not apply to the 'lm' backend"):
        TextToAudio(tiny_backend).generate("a dog", 0.3, steps=10, cfg_rescale=0.5)
    with pytest.raises(ValueError, match="steps must be an int in"):
        TextToAudio(ldm).generate("a dog", 0.3, steps=0)
    with pytest.raises(ValueError, match="at most its window of 2.0 s"):
        TextToAudio(ldm).generate("a dog", 3.0)
    with pytest.raises(ValueError, match="editing needs a diffusion model"):
        TextToAudio(tiny_backend).edit("a dog", torch.zeros(1, 800), sample_rate=SR)


def test_sdedit_at_strength_one_equals_generation(ldm):
    model = TextToAudio(ldm)
    wav = torch.randn(1, 8000) * 0.1
    edited = model.edit("a steady tone", wav, sample_rate=SR, strength=1.0, steps=5, seed=7)
    assert torch.allclose(edited.wav, model.generate("a steady tone", 0.5, steps=5, seed=7).wav, atol=1e-6)
    kept = model.edit("a steady tone", wav, sample_rate=SR, strength=0.0, steps=5, seed=7)
    assert torch.allclose(kept.wav, ldm.decode(ldm.encode_audio(wav[None])).cpu()[..., :8000], atol=1e-5)
    half = model.edit("a steady tone", wav, sample_rate=SR, strength=0.5, steps=5, seed=7)
    assert not torch.allclose(half.wav, edited.wav)


def test_inpainting_keeps_the_known_region_exactly(ldm):
    wav = torch.randn(2, 1, 16000) * 0.1
    out = TextToAudio(ldm).edit(["a dog", "a cat"], wav, sample_rate=SR, mode="inpaint", mask=(0.4, 0.7), steps=4,
                                seed=0).wav
    assert out.shape == (2, 1, 16000)
    assert torch.equal(out[..., :6400], wav[..., :6400]) and torch.equal(out[..., 11200:], wav[..., 11200:])
    assert not torch.allclose(out[..., 6400:11200], wav[..., 6400:11200])


def test_super_resolution_and_input_conversion(ldm):
    import julius

    model = TextToAudio(ldm)
    low = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0)) * 0.1  # stereo 8 kHz: remixed to mono,
    out = model.edit("a tone", low, sample_rate=8000, mode="superres", steps=4, seed=0).wav  # resampled to 16 kHz
    assert out.shape == (1, 1, 8000)
    wav = julius.resample_frac(low.mean(0, keepdim=True), 8000, SR)
    # super-resolution is the style edit (same strength and seed) above the cutoff (4 kHz) and the input below it
    style = model.edit("a tone", low, sample_rate=8000, mode="style", strength=0.6, steps=4, seed=0).wav[0]
    torch.testing.assert_close(out[0], julius.lowpass_filter(wav, 0.25) + style - julius.lowpass_filter(style, 0.25),
                               rtol=0, atol=1e-6)
    # so below 2 kHz the output follows the input, up to what a 2 kHz low-pass lets through of a 4 kHz high-pass:
    # lowpass_2k(out - wav) = g * (style - wav), g = lowpass_2k(delta - lowpass_4k(delta)), and away from the
    # edges (the filters' half-lengths, 32 + 16 samples) |g * x| <= |g|_1 max|x|
    impulse = torch.zeros(1, 4096)
    impulse[0, 2048] = 1.0
    g = julius.lowpass_filter(impulse - julius.lowpass_filter(impulse, 0.25), 2000 / SR)
    bound = float(g.abs().sum() * (style - wav).abs().max())
    assert bound < 1e-3  # the filters barely overlap
    low_band = julius.lowpass_filter(out[0], 2000 / SR) - julius.lowpass_filter(wav, 2000 / SR)
    assert float(low_band[..., 48:-48].abs().max()) <= bound


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="inpaint", mask=(0.2, 0.9)), r"mask span \(0.2, 0.9\) s lies outside the 0.500 s clip"),
        (dict(mode="inpaint"), "needs mask="),
        (dict(strength=1.5), r"strength must be a number in \[0, 1\]"),
        (dict(mode="superres"), "cutoff_hz must be in"),
        (dict(mode="blur"), "edit mode must be one of"),
        (dict(mode="style", mask=(0.1, 0.2)), "mask is for mode='inpaint'"),
    ],
)
def test_bad_edit_inputs_are_explained(ldm, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextToAudio(ldm).edit("a dog", torch.zeros(1, 8000), sample_rate=SR, steps=2, **kwargs)


def test_too_long_or_unrated_edit_input_is_explained(ldm):
    with pytest.raises(ValueError, match="the input is 3.00 s but this model edits at most 2.0 s"):
        TextToAudio(ldm).edit("a dog", torch.zeros(1, 48000), sample_rate=SR)
    with pytest.raises(ValueError, match="sample_rate is needed with a audio tensor"):
        TextToAudio(ldm).edit("a dog", torch.zeros(1, 800))


def two_tones(seconds: float = 2.0) -> torch.Tensor:
    """``[1, N]`` at 16 kHz: 330 Hz and 1250 Hz, peak 0.40 (an input well below full scale)."""
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    wav = 0.25 * torch.sin(2 * math.pi * 330 * t) + 0.15 * torch.sin(2 * math.pi * 1250 * t + 0.3)
    return (wav * (0.4 / wav.abs().max())).float()[None]


@pytest.fixture()
def edit_files(ldm, tmp_path):
    """A saved tiny LDM and a 2 s, 16-bit input file of two tones at peak 0.40."""
    from tokenlm.audio import write_audio

    model_dir = TextToAudio(ldm).save_pretrained(tmp_path / "ldm")
    return model_dir, write_audio(tmp_path / "in.wav", two_tones(), SR)


def test_cli_inpainting_writes_the_input_outside_the_mask(edit_files, tmp_path, capsys):
    from tokenlm.audio import read_audio
    from tokenlm.cli import main

    model_dir, source = edit_files
    wav, _ = read_audio(source)  # [1, N]: what the edit reads
    assert wav.abs().max().item() == pytest.approx(0.4, abs=1e-4)
    expected = TextToAudio.from_pretrained(model_dir).edit("a burst of noise", source, mode="inpaint", mask=(0.6, 1.2),
                                                           steps=3, seed=0).wav[0]  # [1, N] in memory
    assert expected.abs().max() < 1  # nothing would clip, so nothing is scaled
    command = ["edit", "a burst of noise", "--audio", str(source), "--model", str(model_dir), "--mode", "inpaint",
               "--mask", "0.6:1.2", "--steps", "3", "--seed", "0"]
    outside = (slice(None), torch.cat([torch.arange(0, 9600), torch.arange(19200, 32000)]))
    inside = (slice(None), slice(9600, 19200))
    for subtype, step in ((None, 1 / 32768), ("PCM_24", 1 / 2**23), ("FLOAT", 0.0)):
        out = tmp_path / f"edit_{subtype}.wav"
        assert main([*command, "--out", str(out), *(["--subtype", subtype] if subtype else [])]) == 0
        written, rate = read_audio(out)
        assert rate == SR and written.shape == wav.shape
        if subtype == "FLOAT":  # bit for bit outside the mask
            assert torch.equal(written[outside], wav[outside]) and torch.equal(written, expected)
        else:  # within the format's quantization (the 16-bit input's samples are exact in PCM)
            assert (written[outside] - wav[outside]).abs().max().item() <= step
            assert (written - expected).abs().max().item() <= step
        assert (written[inside] - wav[inside]).abs().max() > 0.05  # the masked span was regenerated
    assert "warning" not in capsys.readouterr().err


def test_cli_super_resolution_keeps_the_band_below_the_cutoff(edit_files, tmp_path):
    import julius

    from tokenlm.audio import read_audio
    from tokenlm.cli import main

    model_dir, source = edit_files
    wav, _ = read_audio(source)
    out = tmp_path / "superres.wav"
    assert main(["edit", "a burst of noise", "--audio", str(source), "--model", str(model_dir), "--mode", "superres",
                 "--cutoff-hz", "2000", "--steps", "3", "--seed", "0", "--out", str(out)]) == 0
    written, _ = read_audio(out)
    low_in, low_out = (julius.lowpass_filter(x, 1800 / SR)[..., 800:-800] for x in (wav, written))  # [1, N]
    gain = float((low_out * low_in).sum() / (low_in * low_in).sum())
    assert gain == pytest.approx(1.0, abs=0.01)  # the band below the cutoff keeps the input's level
    assert (low_out - low_in).abs().max().item() < 0.005


tiny_overrides = functools.partial(tiny_recipe_overrides, warmup_steps=3, settings=("conditioners.0.vocab_size=24",))


def test_tiny_ldm_trains_exports_and_generates_from_the_cli(tmp_path, tiny_manifest):
    from tokenlm.cli import main
    from tokenlm.train.main import compose_recipe, run

    for preset, seconds in (("sfx_ldm", 10.0), ("music_ldm", 30.0)):
        cfg = compose_recipe([f"recipe={preset}", "codec.path=/x", "conditioners.0.params.encoder_path=/y",
                              "data.train=/z"])
        assert cfg["backend"] == "ldm" and cfg["model"]["num_layers"] == 12
        assert cfg["data"]["segment_duration"] == seconds and cfg["solver"]["cfg_dropout"] == 0.1
    export = run(["recipe=tiny_ldm", *tiny_overrides(tmp_path / "run", tiny_manifest, 40)])
    losses = [m["loss"] for m in metrics(tmp_path / "run") if "loss" in m]
    assert len(losses) == 40 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    backend = TextToAudio.from_pretrained(export).backend
    assert backend.name == "ldm" and not torch.equal(backend.normalizer.std, torch.ones_like(backend.normalizer.std))
    out = tmp_path / "gen.wav"
    assert main(["generate", "a steady tone at 300 hz", "--model", str(export), "--steps", "3", "--cfg-rescale",
                 "0.5", "--duration", "0.5", "--seed", "0", "--quiet", "--out", str(out)]) == 0
    assert out.is_file()
    edited = tmp_path / "edit.wav"
    assert main(["edit", "white noise hiss", "--audio", str(out), "--model", str(export), "--mode", "inpaint",
                 "--mask", "0.1:0.3", "--steps", "3", "--out", str(edited)]) == 0
    assert edited.is_file()
    assert main(["generate", "a tone", "--model", str(export), "--top-k", "5", "--quiet", "--out", str(out)]) == 2


def test_timing_conditioning_generates_in_the_window_and_trims(spm_model_path):
    backend = make_ldm(spm_model_path, timing=True)
    model = TextToAudio(backend)
    short = model.generate("a dog", 0.5, steps=3, seed=0).wav
    assert short.shape == (1, 1, 8000)
    longer = model.generate("a dog", 1.0, steps=3, seed=0).wav  # same window noise, seconds_total differs
    assert longer.shape == (1, 1, 16000) and not torch.allclose(short, longer[..., :8000])
    given = model.generate({"description": "a dog", "seconds_total": 1.0}, 0.5, steps=3, seed=0).wav
    assert torch.allclose(given, longer[..., :8000], atol=1e-6)  # a given seconds_total is kept
    # training: each clip's valid length becomes its seconds_total, and the silent padding is trained on
    batch = {"wav": torch.randn(2, 1, 32000) * 0.1, "mask": torch.zeros(2, 32000, dtype=torch.bool),
             "attributes": [{"description": "a dog"}, {"description": "a cat"}]}
    batch["mask"][0, :16000] = True
    batch["mask"][1] = True
    latents, frames = backend.training_inputs(batch, torch.device("cpu"))
    assert [a["seconds_total"] for a in batch["attributes"]] == [1.0, 2.0] and bool(frames.all())
    loss = backend.compute_loss(latents, frames, batch["attributes"], torch.zeros(2, dtype=torch.bool))["loss"]
    assert torch.isfinite(loss)


def test_masked_latent_training_and_context_inpainting(spm_model_path, tmp_path):
    with pytest.raises(ValueError, match="needs a DiT with context input"):
        LDMBackend(tiny_dit(latent_dim=32, cond_dim=32), make_ldm(spm_model_path).codec, mask_prob=0.5)
    backend = make_ldm(spm_model_path, context=True)
    x, t = torch.randn(2, 32, 25), torch.tensor([3, 800])
    known = torch.zeros(2, 25, dtype=torch.bool)
    known[:, :10] = True
    context = backend.context_of(x, known)
    assert context.shape == (2, 33, 25) and torch.equal(context[:, :32, 10:], torch.zeros(2, 32, 15))
    # the context projection starts at zero: at init the context changes nothing
    assert torch.equal(backend.dit(x, t, None, context), backend.dit(x, t, None))
    torch.nn.init.normal_(backend.dit.context_in.weight, std=0.1)
    assert not torch.allclose(backend.dit(x, t, None, context), backend.dit(x, t, None))
    backend.mask_prob = 1.0
    torch.manual_seed(0)
    drawn = backend.random_context(x)[:, -1]  # [B, T] known mask: one regenerated span per sample
    assert bool(drawn.any(dim=1).all()) and not bool(drawn.all(dim=1).any())
    loss = backend.compute_loss(x, torch.ones(2, 25, dtype=torch.bool), [{"description": "a dog"}] * 2,
                                torch.zeros(2, dtype=torch.bool))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and backend.dit.context_in.weight.grad is not None
    wav = torch.randn(1, 1, 16000) * 0.1
    model = TextToAudio.from_pretrained(TextToAudio(backend.eval()).save_pretrained(tmp_path / "ckpt"))
    assert model.backend.mask_prob == 1.0 and model.backend.dit.config.context
    out = model.edit("a dog", wav, sample_rate=SR, mode="inpaint", mask=(0.2, 0.6), steps=3, seed=0).wav
    assert torch.equal(out[..., :3200], wav[..., :3200]) and torch.equal(out[..., 9600:], wav[..., 9600:])


@pytest.mark.parametrize("kind", ["ddim", "dpmpp"])
def test_denoising_with_the_true_velocity_recovers_the_latent(kind):
    from tokenlm.ldm.diffusion import DiffusionParams, denoise

    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 8, 12, generator=g), torch.randn(2, 8, 12, generator=g)
    alphas = make_scheduler(kind).alphas_cumprod

    def oracle(x: torch.Tensor, t: torch.Tensor, _: object) -> torch.Tensor:
        """The exact v of x_t for the known x0: v = sqrt(a) eps - sqrt(1 - a) x0, eps from x_t."""
        a = alphas[t.long()].view(-1, 1, 1)
        eps = noise if float(a.max()) == 0 else (x - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    recovered = denoise(oracle, noise.clone(), None, None, DiffusionParams(steps=20, cfg_coef=1.0, scheduler=kind))
    expected = x0
    if kind == "ddim":  # set_alpha_to_one=False (as Stable Diffusion): the last step lands on alpha_cumprod[0] < 1
        a0 = alphas[0]
        expected = a0.sqrt() * x0 + (1 - a0).sqrt() * noise
    torch.testing.assert_close(recovered, expected, atol=1e-4, rtol=1e-4)


def test_codes_to_latent_is_what_the_decoder_reads():
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config

    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    wav = 0.3 * torch.sin(2 * torch.pi * 330 * torch.arange(8000) / 16000)[None, None]  # [1, 1, N]
    codes = codec.encode(wav)  # [1, K, T]
    latent = codec.codes_to_latent(codes)  # [1, D, T]
    assert latent.shape == (1, codec.latent_dim, codes.shape[-1])
    torch.testing.assert_close(codec.decode_latent(latent), codec.decode(codes))
    # the first codebook alone is a coarser latent than all of them
    continuous = codec.encode_latent(wav)
    coarse = codec.model.quantizer.layers[0].decode(codes[:, 0])
    assert (latent - continuous).norm() < (coarse - continuous).norm()
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 128\)"):
        codec.codes_to_latent(torch.full_like(codes, 128))


def test_ldm_trains_on_a_token_cache_and_the_default_recipe_reads_demo_lm_cache(tmp_path, tiny_manifest):
    from tokenlm.train.main import compose_recipe, run

    cache = tmp_path / "cache"
    export = run(["recipe=tiny_ldm", *tiny_overrides(tmp_path / "run", tiny_manifest, 30), f"data.cache={cache}"])
    assert (cache / "index.json").is_file()  # built on first use, then read instead of the audio
    losses = [m["loss"] for m in metrics(tmp_path / "run") if "loss" in m]
    assert len(losses) == 30 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    backend = TextToAudio.from_pretrained(export).backend
    # the latent statistics were fitted on the quantised latent the model trains on
    from tokenlm.data.dataset import AudioSegmentDataset, collate_audio

    items = AudioSegmentDataset([str(tiny_manifest / "train.jsonl")], segment_duration=1.0, sample_rate=16000,
                                channels=1, seed=0)
    batch = collate_audio([items[i] for i in range(min(32, len(items)))])
    quantized = backend.codec.codes_to_latent(backend.codec.encode(batch["wav"]))  # [B, D, T]
    mask = backend._frame_mask(batch["mask"], quantized)  # [B, T]
    mean = (quantized * mask[:, None]).sum((0, 2)) / mask.sum()
    torch.testing.assert_close(backend.normalizer.mean.flatten(), mean, atol=1e-4, rtol=1e-4)
    assert TextToAudio(backend).generate("a steady tone at 300 hz", 0.5, steps=3, seed=0).wav.shape == (1, 1, 8000)
    cfg = compose_recipe(["recipe=demo_ldm"])
    lm = compose_recipe(["recipe=demo_lm"])
    assert cfg["backend"] == "ldm" and cfg["data"]["cache"] == lm["data"]["cache"]
    assert cfg["codec"] == lm["codec"] and cfg["conditioners"] == lm["conditioners"]


def test_guidance_is_uncond_plus_scale_times_the_difference():
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

    from conditioners.base import Condition
    from tokenlm.ldm.diffusion import DiffusionParams, guided_prediction

    def model(x: torch.Tensor, t: torch.Tensor, c: Condition) -> torch.Tensor:
        """A stand-in denoiser whose output depends on the input, the timestep and the condition."""
        return x * c.embeds.mean(dim=(1, 2))[:, None, None] + c.embeds[:, :1, :1] * t[:, None, None] / 1000

    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 8, 12, generator=g), torch.tensor([600])
    cond = Condition(torch.randn(2, 3, 4, generator=g) + 1.0, torch.ones(2, 3, dtype=torch.bool))
    null = Condition(torch.randn(2, 3, 4, generator=g) * 0.1, torch.ones(2, 3, dtype=torch.bool))
    out_cond, out_null = model(x, t.expand(2), cond), model(x, t.expand(2), null)
    plain = guided_prediction(model, x, t, cond, null, DiffusionParams(cfg_coef=4.0, cfg_rescale=0.0))
    torch.testing.assert_close(plain, out_null + 4.0 * (out_cond - out_null))
    rescaled = guided_prediction(model, x, t, cond, null, DiffusionParams(cfg_coef=4.0, cfg_rescale=0.7))
    torch.testing.assert_close(rescaled, rescale_noise_cfg(out_null + 4.0 * (out_cond - out_null), out_cond, 0.7))
    torch.testing.assert_close(guided_prediction(model, x, t, cond, None, DiffusionParams()), out_cond)
    # in numbers: outputs 2 (conditional) and 0.5 (unconditional) guided at 3 give 0.5 + 3 * 1.5 = 5
    constant = Condition(torch.full((2, 3, 4), 2.0), torch.ones(2, 3, dtype=torch.bool))
    half = Condition(torch.full((2, 3, 4), 0.5), torch.ones(2, 3, dtype=torch.bool))
    ones = torch.ones(2, 8, 12)
    guided = guided_prediction(model, ones, torch.tensor([0]), constant, half, DiffusionParams(cfg_coef=3.0,
                                                                                              cfg_rescale=0.0))
    assert torch.equal(guided, torch.full((2, 8, 12), 5.0))


def test_v_prediction_loss_is_the_masked_mse_of_the_velocity(ldm):
    latents = torch.randn(2, 32, 25, generator=torch.Generator().manual_seed(0))
    frames = torch.ones(2, 25, dtype=torch.bool)
    frames[1, 15:] = False  # padding: not a target
    attributes = [{"description": "a dog barks"}, {"description": "rain on a roof"}]
    torch.manual_seed(5)
    losses = ldm.compute_loss(latents, frames, attributes, torch.zeros(2, dtype=torch.bool))
    # the same draws, in the loss's order: a timestep per sample, then the noise
    torch.manual_seed(5)
    t = torch.randint(0, 1000, (2,))
    noise = torch.randn_like(latents)
    a = make_scheduler("ddim").alphas_cumprod[t].view(2, 1, 1)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    velocity = a.sqrt() * noise - (1 - a).sqrt() * latents
    with torch.no_grad():
        error = (ldm.dit(noisy, t, ldm.condition_tokens(attributes)) - velocity).pow(2)  # [B, D, T]
    expected = (error[0].sum() + error[1, :, :15].sum()) / (32 * (25 + 15))
    torch.testing.assert_close(losses["loss"].detach(), expected, rtol=1e-5, atol=1e-7)
    assert torch.equal(losses["mse"], losses["loss"].detach())
    assert not torch.isclose(expected, error.mean(), rtol=1e-3)  # the padded frames would have counted


def test_latent_normalizer_fits_the_valid_frames():
    from tokenlm.ldm.latents import LatentNormalizer

    g = torch.Generator().manual_seed(0)
    latents = torch.randn(3, 4, 10, generator=g) * torch.tensor([0.5, 2.0, 1.0, 3.0])[:, None] + torch.tensor(
        [1.0, -2.0, 0.0, 5.0])[:, None]
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 6:] = False
    mask[2, 3:] = False
    latents[~mask[:, None].expand_as(latents)] = 1e3  # padding values that must not count
    normalizer = LatentNormalizer(4)
    normalizer.fit(latents, mask)
    valid = latents.transpose(1, 2)[mask].double().numpy()  # [N, D] valid frames
    assert valid.shape == (6 + 10 + 3, 4) and (valid < 100).all()
    np.testing.assert_allclose(normalizer.mean.numpy(), valid.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(normalizer.std.numpy(), valid.std(axis=0, ddof=1), rtol=1e-6)
    unit = normalizer.normalize(latents).transpose(1, 2)[mask].double().numpy()
    np.testing.assert_allclose(unit.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(unit.std(axis=0, ddof=1), 1.0, rtol=1e-6)
    torch.testing.assert_close(normalizer.denormalize(normalizer.normalize(latents)), latents)
    normalizer.fit(torch.ones(1, 4, 5) * 7.0)  # a constant channel: its std is floored, not zero
    assert torch.equal(normalizer.mean, torch.full((4,), 7.0)) and torch.equal(normalizer.std, torch.full((4,), 1e-5))
    with pytest.raises(ValueError, match="at least 2 valid latent frames"):
        normalizer.fit(latents, torch.zeros(3, 10, dtype=torch.bool))


def test_ldm_sampling_defaults_are_saved_and_yield_to_the_caller(spm_model_path, tmp_path):
    from tokenlm.ldm.diffusion import DiffusionParams

    backend = make_ldm(spm_model_path)
    backend.sampling_defaults = backend.check_sampling_defaults({"steps": 4, "scheduler": "dpmpp"})
    assert backend.make_sampling({}) == DiffusionParams(steps=4, scheduler="dpmpp")
    assert backend.make_sampling({"steps": 2}) == DiffusionParams(steps=2, scheduler="dpmpp")
    backend.save_pretrained(tmp_path / "model")
    model = TextToAudio.from_pretrained(tmp_path / "model")
    assert model.backend.sampling_defaults == {"steps": 4, "scheduler": "dpmpp"}
    by_default = model.generate("a dog", 0.5, seed=0).wav
    assert torch.equal(by_default, model.generate("a dog", 0.5, seed=0, steps=4, scheduler="dpmpp").wav)
    assert not torch.equal(by_default, model.generate("a dog", 0.5, seed=0, steps=4, scheduler="ddim").wav)
    with pytest.raises(ValueError, match=r"unknown sampling default\(s\) \['top_k'\]"):
        backend.check_sampling_defaults({"top_k": 5})


def reference_attention(attn, x: torch.Tensor, rope) -> torch.Tensor:
    """The DiT's self-attention written step by step in float32: heads [B, H, T, Dh], nn.RMSNorm QK-norm with
    float32's epsilon, RoPE, softmax attention."""
    import torch.nn.functional as F

    from tokenlm.common.positions import apply_rope

    batch, steps, dim = x.shape
    heads = lambda t: t.view(batch, steps, attn.num_heads, attn.head_dim).transpose(1, 2)  # noqa: E731
    k, v = attn.kv(x).chunk(2, dim=-1)
    eps = torch.finfo(torch.float32).eps
    q = F.rms_norm(heads(attn.q(x)), (attn.head_dim,), attn.q_norm.weight, eps)
    k = F.rms_norm(heads(k), (attn.head_dim,), attn.k_norm.weight, eps)
    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(attn.head_dim)
    out = scores.softmax(dim=-1) @ heads(v)  # [B, H, T, Dh]
    return attn.out(out.transpose(1, 2).reshape(batch, steps, dim))


def test_dit_attention_equals_the_textbook_formulation_and_bf16_stays_close():
    from tokenlm.common.positions import rope_tables

    dit = tiny_dit()
    attn = dit.blocks[0].attn
    for norm in (attn.q_norm, attn.k_norm):  # trained norms are not all ones
        torch.nn.init.normal_(norm.weight, mean=1.0, std=0.3)
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    rope = rope_tables(torch.arange(7), attn.head_dim)
    with torch.no_grad():
        expected = reference_attention(attn, x, rope)
        torch.testing.assert_close(attn(x, rope=rope), expected, rtol=1e-5, atol=1e-6)
        attn.to(torch.bfloat16)  # in bf16 the norm still uses float32's epsilon: close to the float32 result
        low = attn(x.to(torch.bfloat16), rope=rope).float()
    assert (low - expected).abs().max() < 0.03 * expected.abs().max()


def test_dit_gelu_is_tanh_in_float32_and_within_bf16_rounding_of_it_in_bf16():
    import torch.nn.functional as F

    from tokenlm.ldm.dit import TanhGELU

    x = torch.linspace(-6, 6, 4001)
    assert torch.equal(TanhGELU()(x), F.gelu(x, approximate="tanh"))
    low = TanhGELU()(x.to(torch.bfloat16)).float()
    reference = F.gelu(x.to(torch.bfloat16).float(), approximate="tanh")
    # the forms differ by at most 5e-4; on top of that, bf16 rounds each value by up to one step (2^-7 relative)
    assert ((low - reference).abs() <= 5e-4 + reference.abs() * 2**-7).all()
    assert not torch.equal(low, TanhGELU()(x).to(torch.bfloat16).float())  # it is the other form


def test_cli_eval_samples_a_diffusion_model_with_the_given_steps_and_scheduler(spm_model_path, tmp_path):
    from tokenlm import cli
    from tokenlm.audio import read_audio

    model_dir = make_ldm(spm_model_path).save_pretrained(tmp_path / "ldm")
    captions = ["a sine tone at A4", "white noise"]
    (tmp_path / "captions.txt").write_text("\n".join(captions) + "\n")
    out = tmp_path / "report"
    assert cli.main(["eval", "--captions", str(tmp_path / "captions.txt"), "--model", str(model_dir), "--out",
                     str(out), "--duration", "1.0", "--batch-size", "2", "--shuffles", "2", "--steps", "3",
                     "--scheduler", "dpmpp", "--cfg", "4"]) == 0
    model = TextToAudio.from_pretrained(model_dir)
    for steps, same in ((3, True), (5, False)):
        expected = model.generate(captions, 1.0, seed=0, steps=steps, scheduler="dpmpp", cfg_coef=4.0).wav
        for index in range(2):
            mono = expected[index].mean(0)
            mono = mono / max(1.0, float(mono.abs().max()))  # eval writes each clip as generate does
            written, _ = read_audio(out / "audio" / f"clip_{index:05d}.wav")
            close = torch.allclose(written[0], mono, atol=2 / 32768)
            assert close == same
