"""Zero-shot editing with a trained diffusion model, measured with the evaluation's detectors.

Three edits of ``TextToAudio.edit`` on clips rendered by the synthetic generator (``tokenlm.data.synth``), each
checked for what it claims:

1. **style** (SDEdit): a source clip with one detectable attribute (white noise, a 440 Hz sine, ...) is edited
   towards a prompt that changes that attribute (brown noise, 880 Hz, ...) at several strengths. Per strength: the
   fraction of clips whose detected attribute matches the new prompt, the fraction still matching the source, the
   multi-scale log-mel distance to the source (the codec's ``mel_distance``, as in docs/codec.md) and the distance
   of the long-term mel spectra. Strength 0 (no denoising: the codec round trip) is the reference row.
2. **inpaint**: a span of each clip (by default its second half) is regenerated under a prompt and under a
   contrasting one (a high hiss / a low rumble, over sources that are themselves rumbles or hisses). The known
   region must equal the input sample for sample (the API's promise: waveform level, not latent), also after
   writing the result as a float WAV; the detector on the filled span must find what its prompt asks for.
3. **superres**: each clip is low-passed (``--cutoff-hz``, 4 kHz) and edited back with its own caption as the
   prompt. Measured: energy above the cutoff relative to the original and to the low-passed input, the high band's
   long-term spectral distance to the original, how well the band below the cutoff keeps the input (frame-by-frame
   spectral distance, and the band's signal-to-difference ratio), and the caption attributes the detectors find in
   the original, the input and the output. Strength 0 (the codec round trip of the low-passed input, recombined the
   same way) is the reference.

    .venv/bin/python benchmarks/editing.py --threads 1              # the full run: writes docs/results/editing.json
    .venv/bin/python benchmarks/editing.py --quick                  # 2 clips, 2 steps: a smoke run (seconds)
    .venv/bin/python benchmarks/editing.py --settings colour,band,pitch,direction --clips 24 --out editing.json

The figures of the full run, and what they show, are in docs/editing.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import julius
import numpy as np
import torch
from probes import warn_if_busy
from reports import cpu_name

from tokenlm.audio import read_audio, write_audio
from tokenlm.codecs.training.losses import mel_distance
from tokenlm.common.device import cpu_has_native_bf16
from tokenlm.data.synth import make_clip
from tokenlm.eval import dsp
from tokenlm.eval.analysis import Analysis, analyze
from tokenlm.eval.attributes import check, check_clip

DEFAULT_OUT = "docs/results/editing.json"
#: a long-term mel band counts down to this many dB under the loudest one (empty bands do not dominate distances)
LTAS_RANGE_DB = 60.0
#: a band kept sample for sample has an infinite SNR; reported as this
MAX_SNR_DB = 99.0
#: spectral distances count bins down to this many dB under the loudest
SPECTRUM_RANGE_DB = 100.0


@dataclass(frozen=True)
class StyleSetting:
    """A style-transfer experiment: sources of ``family`` with labels ``given`` (``attribute`` = ``source``),
    edited under ``prompt``, which asks for ``attribute`` = ``target``."""

    name: str
    family: str
    given: dict[str, Any]
    attribute: str
    source: Any
    target: Any
    prompt: str


STYLE_SETTINGS = {
    setting.name: setting
    for setting in (
        StyleSetting("colour", "noise", {"noise_colour": "white"}, "noise_colour", "white", "brown", "brown noise"),
        StyleSetting("pitch", "tone", {"pitch_hz": 440.0, "waveform": "sine", "envelope": "sustained"}, "pitch",
                     440.0, 880.0, "a sustained sine tone at 880 Hz"),
        StyleSetting("band", "noise_band", {"noise_band": "low"}, "noise_band", "low", "high", "a high hiss"),
        StyleSetting("direction", "sweep", {"direction": "rising", "waveform": "sine"}, "direction", "rising",
                     "falling", "a falling sine sweep"),
    )
}
#: inpainting: the two contrasting prompts and the noise band each asks for
INPAINT_PROMPTS = {"high": "a high hiss", "low": "a low rumble"}
#: super-resolution sources: sounds with energy above 4 kHz, taken in turn
SUPERRES_SOURCES = (
    ("noise", {"noise_colour": "white"}),
    ("noise", {"noise_colour": "pink"}),
    ("noise_band", {"noise_band": "high"}),
    ("bursts", {"event": "noise"}),
    ("tone", {"waveform": "sawtooth"}),
    ("clicks", {}),
)


@dataclass
class Clip:
    """A source clip: mono float32 ``[N]`` at the model's rate, its caption and labels."""

    wav: torch.Tensor
    caption: str
    labels: dict[str, Any]


@dataclass
class Timer:
    """Wall and process-CPU seconds spent per section."""

    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def run(self, name: str, work: Callable[[], Any]) -> Any:
        """``work()``, its seconds recorded under ``name``."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        self.seconds[name] = {"wall_s": round(time.perf_counter() - wall, 1),
                              "cpu_s": round(time.process_time() - cpu, 1)}
        return result


# ---------------------------------------------------------------------------------------------- measurements


def render_sources(family: str, given: dict[str, Any], count: int, duration: float, rate: int,
                   seed: Sequence[int]) -> list[Clip]:
    """``count`` synthetic clips of ``family`` with the labels ``given`` (the rest drawn), at ``rate``."""
    clips = []
    for index in range(count):
        rng = np.random.default_rng([*seed, index])
        wav, clip_rate, caption, labels = make_clip(rng, "sfx16k", family=family, duration=duration, given=given)
        if clip_rate != rate:
            raise SystemExit(f"the synthetic clips are at {clip_rate} Hz but the model runs at {rate} Hz")
        clips.append(Clip(torch.from_numpy(wav), caption, labels))
    return clips


def mel_distance_to(out: torch.Tensor, source: torch.Tensor, rate: int) -> list[float]:
    """Multi-scale log-mel distance of each clip of ``out`` ``[B, N]`` to its source: the codec's ``mel_distance``
    (mean absolute log10 mel difference over windows of 64 to 2048 samples), as in docs/codec.md."""
    return [float(d) for d in mel_distance(out[:, None], source[:, None], rate)]


def mel_ltas_distance_db(a: torch.Tensor, b: torch.Tensor, rate: int) -> float:
    """Mean absolute difference (dB) of the long-term mel spectra (mel power averaged over time) of two clips, both
    floored :data:`LTAS_RANGE_DB` under the louder one's peak: the spectral envelope, blind to the fine structure
    that two realisations of the same noise do not share."""
    a_db, b_db = (10.0 * torch.log10(dsp.mel_matrix() @ spectrum(w, rate).mean(1) + dsp.EPS) for w in (a, b))
    floor = float(torch.maximum(a_db.max(), b_db.max())) - LTAS_RANGE_DB
    return float((a_db.clamp(min=floor) - b_db.clamp(min=floor)).abs().mean())


def band_rows(n_fft: int, low_hz: float, high_hz: float) -> torch.Tensor:
    """The rfft bins (``n_fft`` at the analysis rate) from ``low_hz`` to ``high_hz``, as a bool mask."""
    freqs = dsp.fft_freqs(n_fft)
    return (freqs >= low_hz) & (freqs <= high_hz)


def spectrum(wav: torch.Tensor, rate: int) -> torch.Tensor:
    """Power spectrogram ``[F, T]`` of a mono clip at the analysis rate (the detectors' STFT)."""
    return dsp.stft_power(dsp.to_analysis_rate(wav, rate))


def band_energy(power: torch.Tensor, rows: torch.Tensor) -> float:
    """Energy of a power spectrogram in the bins ``rows``."""
    return float(power[rows].sum())


def ratio_db(a: float, b: float) -> float:
    """``10 log10(a / b)``, each energy floored at 1e-20."""
    return 10.0 * float(np.log10(max(a, 1e-20) / max(b, 1e-20)))


def frame_distance_db(a: torch.Tensor, b: torch.Tensor, rows: torch.Tensor) -> float:
    """Mean absolute dB difference of two power spectrograms ``[F, T]`` over the bins ``rows``, frame by frame;
    both floored :data:`SPECTRUM_RANGE_DB` under the louder one's peak in that band."""
    a_db, b_db = (10.0 * torch.log10(p[rows] + dsp.EPS) for p in (a, b))
    floor = float(torch.maximum(a_db.max(), b_db.max())) - SPECTRUM_RANGE_DB
    return float((a_db.clamp(min=floor) - b_db.clamp(min=floor)).abs().mean())


def ltas_distance_db(a: torch.Tensor, b: torch.Tensor, rows: torch.Tensor) -> float:
    """RMS dB difference of the long-term average spectra (mean power per bin) over the bins ``rows``."""
    a_db, b_db = (10.0 * torch.log10(p[rows].mean(1) + dsp.EPS) for p in (a, b))
    return float((a_db - b_db).square().mean().sqrt())


def low_band_snr_db(wavs: torch.Tensor, reference: torch.Tensor, ratio: float) -> list[float]:
    """Per clip, how closely ``wavs`` ``[B, N]`` keep ``reference``'s band below ``ratio`` x the sample rate: the
    band's energy over the energy of the difference in that band, in dB (:data:`MAX_SNR_DB` when identical)."""
    kept, ref = julius.lowpass_filter(wavs, ratio), julius.lowpass_filter(reference, ratio)
    error, power = (kept - ref).square().sum(-1), ref.square().sum(-1)
    return [min(MAX_SNR_DB, ratio_db(float(p), float(e))) for p, e in zip(power, error, strict=True)]


def jsonable(value: Any) -> Any:
    """A detected value as JSON (floats rounded)."""
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def edit_batches(model: Any, prompts: list[str], wavs: torch.Tensor, batch: int, **kwargs: Any) -> torch.Tensor:
    """``model.edit`` over ``wavs`` ``[B, N]`` in batches of ``batch`` (one seed per batch); ``[B, N]`` back."""
    out = []
    for start in range(0, wavs.shape[0], batch):
        chunk = wavs[start:start + batch, None]  # [b, 1, N]
        out.append(model.edit(prompts[start:start + batch], chunk, sample_rate=model.sample_rate, **kwargs).wav[:, 0])
    return torch.cat(out)


def analyses_of(wavs: torch.Tensor, rate: int) -> list[Analysis]:
    """The detectors on each clip of ``[B, N]`` (one torch thread: they run faster so)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [analyze(wav, rate) for wav in wavs]
    finally:
        torch.set_num_threads(threads)


def style_transfer(model: Any, setting: StyleSetting, args: argparse.Namespace, index: int) -> dict[str, Any]:
    """SDEdit of ``setting``'s sources at each strength: target / source attribute matches, distance to source."""
    rate = model.sample_rate
    clips = render_sources(setting.family, setting.given, args.clips, args.duration, rate, (args.seed, 1, index))
    sources = torch.stack([clip.wav for clip in clips])  # [B, N]
    source_checks = [check(setting.attribute, setting.source, a) for a in analyses_of(sources, rate)]
    rows = []
    print(f"\nstyle '{setting.name}': {len(clips)} {setting.family} clips with {setting.attribute} = "
          f"{setting.source!r} (detected on {sum(c.matched for c in source_checks)}/{len(clips)}), "
          f"edited under {setting.prompt!r} ({setting.attribute} = {setting.target!r})")
    print(f"{'strength':>8}  {'target match':>12}  {'source match':>12}  {'mel distance to source':>22}  "
          f"{'long-term mel dist. (dB)':>24}")
    for strength in [0.0, *args.strengths]:
        out = edit_batches(model, [setting.prompt] * len(clips), sources, args.batch, mode="style",
                           strength=strength, steps=args.steps, seed=args.seed)
        analyses = analyses_of(out, rate)
        target = [check(setting.attribute, setting.target, a) for a in analyses]
        source = [check(setting.attribute, setting.source, a) for a in analyses]
        distances = mel_distance_to(out, sources, rate)
        envelopes = [mel_ltas_distance_db(o, s, rate) for o, s in zip(out, sources, strict=True)]
        row = {"strength": strength, "target_match": sum(c.matched for c in target) / len(clips),
               "source_match": sum(c.matched for c in source) / len(clips),
               "mel_distance": round(float(np.mean(distances)), 3),
               "mel_distance_std": round(float(np.std(distances)), 3),
               "mel_ltas_distance_db": round(float(np.mean(envelopes)), 2),
               "detected": [jsonable(c.detected) for c in target]}
        rows.append(row)
        print(f"{strength:>8.1f}  {row['target_match']:>12.2f}  {row['source_match']:>12.2f}  "
              f"{row['mel_distance']:>14.3f} ± {row['mel_distance_std']:.3f}  "
              f"{row['mel_ltas_distance_db']:>24.2f}", flush=True)
    return {"family": setting.family, "attribute": setting.attribute, "source": setting.source,
            "target": setting.target, "prompt": setting.prompt,
            "source_detected": [jsonable(c.detected) for c in source_checks],
            "source_captions": [clip.caption for clip in clips], "rows": rows}


def inpainting(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Regenerate ``args.mask`` of rumble / hiss clips under both contrasting prompts."""
    rate = model.sample_rate
    half = (args.clips + 1) // 2
    clips = (render_sources("noise_band", {"noise_band": "low"}, half, args.duration, rate, (args.seed, 2, 0))
             + render_sources("noise_band", {"noise_band": "high"}, args.clips - half, args.duration, rate,
                              (args.seed, 2, 1)))
    sources = torch.stack([clip.wav for clip in clips])  # [B, N]
    bands = [clip.labels["noise_band"] for clip in clips]
    start, end = args.mask
    span = slice(round(start * rate), round(end * rate))
    keep = torch.ones(sources.shape[-1], dtype=torch.bool)
    keep[span] = False
    source_fill = [a.noise_band for a in analyses_of(sources[:, span], rate)]
    print(f"\ninpaint {start:g}-{end:g} s of {len(clips)} clips ({bands.count('low')} rumbles, "
          f"{bands.count('high')} hisses; the source's own span detected as its band on "
          f"{sum(d == b for d, b in zip(source_fill, bands, strict=True))}/{len(clips)})")
    print(f"{'prompt':>14}  {'fill matches prompt':>19}  {'(context agrees)':>16}  {'(context differs)':>17}  "
          f"{'known region bit-exact':>22}  {'after float WAV':>15}")
    results = {}
    for band, prompt in INPAINT_PROMPTS.items():
        out = edit_batches(model, [prompt] * len(clips), sources, args.batch, mode="inpaint", mask=(start, end),
                           steps=args.steps, seed=args.seed)
        exact = [bool(torch.equal(o[keep], s[keep])) for o, s in zip(out, sources, strict=True)]
        max_diff = float((out[:, keep] - sources[:, keep]).abs().max())
        saved = []
        with tempfile.TemporaryDirectory() as folder:
            for row, wav in enumerate(out):
                path = write_audio(Path(folder) / f"{row}.wav", wav[None], rate, subtype="FLOAT")
                back, _ = read_audio(path)
                saved.append(bool(torch.equal(back[0][keep], sources[row][keep])))
        analyses = analyses_of(out[:, span], rate)
        matched = [check("noise_band", band, a).matched for a in analyses]
        agrees = [m for m, b in zip(matched, bands, strict=True) if b == band]
        differs = [m for m, b in zip(matched, bands, strict=True) if b != band]
        results[band] = {"prompt": prompt, "fill_match": sum(matched) / len(matched),
                         "fill_match_context_agrees": sum(agrees) / max(1, len(agrees)),
                         "fill_match_context_differs": sum(differs) / max(1, len(differs)),
                         "known_bit_exact": sum(exact) / len(exact), "known_max_abs_diff": max_diff,
                         "known_bit_exact_after_float_wav": sum(saved) / len(saved),
                         "fill_detected": [a.noise_band for a in analyses]}
        r = results[band]
        print(f"{prompt:>14}  {r['fill_match']:>19.2f}  {r['fill_match_context_agrees']:>16.2f}  "
              f"{r['fill_match_context_differs']:>17.2f}  {r['known_bit_exact']:>22.2f}  "
              f"{r['known_bit_exact_after_float_wav']:>15.2f}", flush=True)
    return {"mask_s": [start, end], "source_bands": bands, "source_span_detected": source_fill,
            "prompts": results}


def super_resolution(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Low-pass clips at ``args.cutoff_hz``, edit them back with their captions; high-band energy restored,
    low band kept."""
    rate = model.sample_rate
    clips = []
    for index in range(args.clips):
        family, given = SUPERRES_SOURCES[index % len(SUPERRES_SOURCES)]
        clips += render_sources(family, given, 1, args.duration, rate, (args.seed, 3, index))
    originals = torch.stack([clip.wav for clip in clips])  # [B, N]
    lowpassed = julius.lowpass_filter(originals, args.cutoff_hz / rate)
    high = band_rows(dsp.N_FFT, args.cutoff_hz * 1.1, rate / 2)  # above the low-pass filter's transition band
    low = band_rows(dsp.N_FFT, 0.0, args.cutoff_hz * 0.9)
    original_power = [spectrum(w, rate) for w in originals]
    input_power = [spectrum(w, rate) for w in lowpassed]
    labels = [clip.labels for clip in clips]

    def alignment(wavs: torch.Tensor) -> tuple[float, dict[str, str]]:
        """The fraction of the captions' checked attributes the detectors find, and ``matched/checked`` per
        attribute."""
        checks = [c for a, lab in zip(analyses_of(wavs, rate), labels, strict=True) for c in check_clip(lab, a)]
        per = {name: [c.matched for c in checks if c.attribute == name] for name in {c.attribute for c in checks}}
        return (sum(c.matched for c in checks) / max(1, len(checks)),
                {name: f"{sum(hits)}/{len(hits)}" for name, hits in sorted(per.items())})

    def summary(name: str, powers: list[torch.Tensor], wavs: torch.Tensor) -> dict[str, Any]:
        hf = [ratio_db(band_energy(p, high), band_energy(o, high)) for p, o in zip(powers, original_power,
                                                                                  strict=True)]
        gain = [ratio_db(band_energy(p, high), band_energy(i, high)) for p, i in zip(powers, input_power,
                                                                                    strict=True)]
        snr = low_band_snr_db(wavs, lowpassed, args.cutoff_hz * 0.9 / rate)
        aligned, per_attribute = alignment(wavs)
        return {"name": name, "hf_energy_db_vs_original": [round(v, 1) for v in hf],
                "hf_energy_db_median": round(float(np.median(hf)), 1),
                "hf_within_6db": sum(abs(v) <= 6.0 for v in hf) / len(hf),
                "hf_energy_db_vs_input_median": round(float(np.median(gain)), 1),
                "lf_snr_db": [round(v, 1) for v in snr], "lf_snr_db_median": round(float(np.median(snr)), 1),
                "hf_ltas_distance_db": round(float(np.mean([ltas_distance_db(p, o, high) for p, o in
                                                             zip(powers, original_power, strict=True)])), 2),
                "lf_distance_to_input_db": round(float(np.mean([frame_distance_db(p, i, low) for p, i in
                                                                 zip(powers, input_power, strict=True)])), 2),
                "caption_alignment": round(aligned, 3), "caption_checks": per_attribute}

    print(f"\nsuper-resolution of {len(clips)} clips low-passed at {args.cutoff_hz:g} Hz, prompted with their captions "
          f"(high band: {args.cutoff_hz * 1.1:g}-{rate / 2:g} Hz; low band: below {args.cutoff_hz * 0.9:g} Hz)")
    print(f"{'':>18}  {'HF energy vs orig.':>18}  {'vs input':>8}  {'HF within 6 dB':>14}  {'HF LTAS dist.':>13}  "
          f"{'LF dist. to input':>17}  {'LF SNR':>7}  {'caption alignment':>17}")
    rows = [summary("original", original_power, originals), summary("low-passed input", input_power, lowpassed)]
    for strength in [0.0, *args.sr_strengths]:
        out = edit_batches(model, [clip.caption for clip in clips], lowpassed, args.batch, mode="superres",
                           cutoff_hz=args.cutoff_hz, strength=strength, steps=args.steps, seed=args.seed)
        rows.append({**summary(f"edit, strength {strength:g}", [spectrum(w, rate) for w in out], out),
                     "strength": strength})
    for row in rows:
        print(f"{row['name']:>18}  {row['hf_energy_db_median']:>15.1f} dB  "
              f"{row['hf_energy_db_vs_input_median']:>5.1f} dB  {row['hf_within_6db']:>14.2f}  "
              f"{row['hf_ltas_distance_db']:>10.1f} dB  {row['lf_distance_to_input_db']:>14.2f} dB  "
              f"{row['lf_snr_db_median']:>4.1f} dB  {row['caption_alignment']:>17.2f}")
    return {"cutoff_hz": args.cutoff_hz, "high_band_hz": [args.cutoff_hz * 1.1, rate / 2],
            "low_band_hz": [0.0, args.cutoff_hz * 0.9], "captions": [clip.caption for clip in clips],
            "families": [clip.labels["family"] for clip in clips], "rows": rows}


# ---------------------------------------------------------------------------------------------- command line


def floats(text: str) -> list[float]:
    """``"0.2,0.4"`` -> ``[0.2, 0.4]``."""
    return [float(value) for value in text.split(",") if value.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default-ldm", help="a diffusion checkpoint folder (default: the "
                        "shipped default-ldm)")
    parser.add_argument("--clips", type=int, default=12, help="source clips per setting")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per clip (the default model's window)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's own)")
    parser.add_argument("--strengths", type=floats, default=[0.2, 0.4, 0.6, 0.8, 1.0],
                        help="style-transfer strengths (strength 0, the codec round trip, is always added)")
    parser.add_argument("--edits", default="style,inpaint,superres", help="which edits to measure")
    parser.add_argument("--settings", default="colour,pitch",
                        help=f"style-transfer settings, of {', '.join(STYLE_SETTINGS)}")
    parser.add_argument("--mask", type=floats, default=None, help="inpainted span start,end in seconds "
                        "(default: the second half)")
    parser.add_argument("--cutoff-hz", type=float, default=4000.0, help="super-resolution low-pass cutoff")
    parser.add_argument("--sr-strengths", type=floats, default=[0.6, 1.0],
                        help="super-resolution strengths (0, the codec round trip, is always added)")
    parser.add_argument("--batch", type=int, default=12, help="clips per edit call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16 (TextToAudio.from_pretrained)")
    parser.add_argument("--out", default=None, help=f"JSON results (default: {DEFAULT_OUT}; none with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 clips of 2 s, 2 steps, strengths 0.5 and 1, the colour setting only")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.duration, args.steps, args.strengths = 2, 2.0, 2, [0.5, 1.0]
        args.settings, args.sr_strengths = "colour", [0.6]
    else:
        args.out = args.out or DEFAULT_OUT
    settings = [name.strip() for name in args.settings.split(",") if name.strip()]
    unknown = [name for name in settings if name not in STYLE_SETTINGS]
    if unknown:
        parser.error(f"unknown --settings {unknown}; choose from {', '.join(STYLE_SETTINGS)}")
    edits = [name.strip() for name in args.edits.split(",") if name.strip()]
    if not edits or any(name not in ("style", "inpaint", "superres") for name in edits):
        parser.error(f"--edits takes style, inpaint and/or superres, got {args.edits!r}")
    args.mask = tuple(args.mask) if args.mask else (args.duration / 2, args.duration)
    if len(args.mask) != 2:
        parser.error("--mask takes start,end in seconds")
    torch.set_num_threads(args.threads)

    from tokenlm import TextToAudio

    timer = Timer()
    model = timer.run("load", lambda: TextToAudio.from_pretrained(args.model, dtype=args.dtype))
    backend = model.backend
    params = backend.make_sampling({} if args.steps is None else {"steps": args.steps})
    args.steps = params.steps
    dtype = str(backend.generator_dtype).removeprefix("torch.")
    print(f"CPU: {cpu_name()}; native bf16 (AVX-512 BF16 / AMX): {'yes' if cpu_has_native_bf16() else 'no'}; "
          f"{args.threads} threads; torch {torch.__version__}")
    print(f"model {args.model}: {dtype} DiT, {params.steps} {params.scheduler} steps, CFG {params.cfg_coef:g} "
          f"(rescale {params.cfg_rescale:g}); {args.clips} clips of {args.duration:g} s per setting, seed {args.seed}")
    warn_if_busy("before the run")
    style = {name: timer.run(f"style_{name}", lambda name=name, i=i: style_transfer(model, STYLE_SETTINGS[name],
                                                                                    args, i))
             for i, name in enumerate(settings)} if "style" in edits else None
    inpaint = timer.run("inpaint", lambda: inpainting(model, args)) if "inpaint" in edits else None
    superres = timer.run("superres", lambda: super_resolution(model, args)) if "superres" in edits else None
    print("\nseconds (wall / process CPU): " + ", ".join(f"{name} {t['wall_s']:.0f} / {t['cpu_s']:.0f}"
                                                          for name, t in timer.seconds.items()))
    if args.out:
        report = {"cpu": cpu_name(), "native_bf16": cpu_has_native_bf16(), "platform": platform.platform(),
                  "torch": torch.__version__, "threads": args.threads, "model": args.model, "dtype": dtype,
                  "steps": params.steps, "scheduler": params.scheduler, "cfg_coef": params.cfg_coef,
                  "cfg_rescale": params.cfg_rescale, "clips": args.clips, "duration_s": args.duration,
                  "seed": args.seed, "quick": args.quick, "style": style, "inpaint": inpaint, "superres": superres,
                  "seconds": timer.seconds}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
