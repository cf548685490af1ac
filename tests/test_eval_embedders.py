"""Standard-metric embedders loaded from local folders, with tiny random models built in the tests."""

import numpy as np
import pytest
import torch

from tokenlm.codecs import EncodecCodec, tiny_encodec_config
from tokenlm.eval.embedders import load_classifier, load_embedder
from tokenlm.eval.embedders.panns import Cnn14
from tokenlm.eval.embedders.vggish import VGGish, log_mel_patches
from tokenlm.eval.frechet import frechet_between
from tokenlm.eval.metrics import inception_score, kl_divergences
from tokenlm.eval.suite import standard_metrics

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from conftest import build_tiny_clap
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.conftest import build_tiny_clap

CAPTIONS = ["a sine tone at A4", "white noise bursting three times", "a beep, then a burst of noise",
            "clicks at 120 bpm", "a low rumble", "a rising square sweep"]


def _clips(count: int, seed: int, rate: int = 16000) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal(rate).astype(np.float32), rate) for _ in range(count)]


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    """A tiny random ClapModel with a byte-level BPE tokenizer and a 16 kHz feature extractor."""
    return build_tiny_clap(tmp_path_factory.mktemp("clap"), CAPTIONS * 3, sampling_rate=16000, hop_length=160,
                           fft_window_size=400, frequency_max=8000, text_layers=1, max_positions=64)


def test_clap_score_through_a_local_clap_model(clap_dir):
    from transformers import ClapModel, ClapProcessor

    embedder = load_embedder("clap", clap_dir)
    clips = _clips(len(CAPTIONS), 0)
    metrics = standard_metrics(clips, clips, CAPTIONS, clap=embedder)
    model = ClapModel.from_pretrained(clap_dir).eval()
    processor = ClapProcessor.from_pretrained(clap_dir)
    with torch.no_grad():
        text = model.get_text_features(**processor.tokenizer(CAPTIONS, padding=True, return_tensors="pt"))
        text = text if isinstance(text, torch.Tensor) else text.pooler_output
        audio = torch.cat([
            (lambda out: out if isinstance(out, torch.Tensor) else out.pooler_output)(model.get_audio_features(
                **processor.feature_extractor(wav, sampling_rate=16000, return_tensors="pt")))
            for wav, _ in clips
        ])
    expected = torch.nn.functional.cosine_similarity(text, audio).mean().item()
    assert metrics["clap_score"] == pytest.approx(expected, abs=1e-5)
    assert -1.0 <= metrics["clap_score"] <= 1.0
    fad = standard_metrics(clips[:3], clips[3:], CAPTIONS[:3], embedders={"clap": embedder})["fad_clap"]
    expected_fad = _frechet_by_eigenvalues(audio[:3].double().numpy(), audio[3:].double().numpy())
    assert fad == pytest.approx(expected_fad, rel=1e-4, abs=1e-9) and fad > 1e-6


def test_encodec_latents_as_fad_embeddings(tmp_path):
    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    codec.save_pretrained(tmp_path / "encodec")
    embedder = load_embedder("encodec", tmp_path / "encodec")
    clips, refs = _clips(3, 1), _clips(3, 2)
    embeddings = embedder.embed_clips(clips)
    latent = codec.encode_latent(torch.from_numpy(clips[0][0])[None, None])[0].T  # [T, D]
    assert embeddings[0].shape == (50, codec.latent_dim)
    assert np.allclose(embeddings[0], latent.numpy(), atol=1e-6)
    fad = standard_metrics(clips, refs, CAPTIONS[:3], embedders={"encodec": embedder})["fad_encodec"]
    expected = frechet_between(np.concatenate(embeddings), np.concatenate(embedder.embed_clips(refs)))
    assert fad == pytest.approx(expected, rel=1e-9)


def test_vggish_loads_a_torchvggish_state_dict(tmp_path):
    torch.manual_seed(0)
    model = VGGish(widths=(4, 4, 8, 8, 8, 8), hidden=(16, 16, 8))
    (tmp_path / "vggish").mkdir()
    torch.save(model.state_dict(), tmp_path / "vggish" / "vggish-10086976.pth")
    embedder = load_embedder("vggish", tmp_path / "vggish")
    wav = torch.from_numpy(_clips(1, 3)[0][0])
    wav2 = torch.cat([wav, wav])  # 2 s: two 0.96 s patches
    patches = log_mel_patches(wav2)
    assert patches.shape == (2, 1, 96, 64)
    with torch.no_grad():
        expected = model.eval()(patches)
    assert torch.allclose(embedder.embed(wav2), expected)
    assert embedder.embed(wav[:4000]).shape == (1, 8)  # a short clip is padded to one patch


def test_panns_cnn14_checkpoint_gives_embeddings_and_logits(tmp_path):
    torch.manual_seed(0)
    model = Cnn14(widths=(4, 4, 4, 4, 4, 8), embedding=8, classes=5).eval()
    with torch.no_grad():  # trained-like input normalisation
        model.bn0.running_mean.fill_(-80.0)
        model.bn0.running_var.fill_(900.0)
        for name, module in model.named_modules():
            if name.startswith("conv_block") and isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.fill_(0.01)  # keeps the random activations from fading with depth
        probe = model(torch.from_numpy(_clips(1, 9, 32000)[0][0])[None])[0]
        model.fc_audioset.weight.mul_(3.0 / probe.norm())  # logits of order one
    state = dict(model.state_dict())
    mel = torch.rand(513, 64)
    state["logmel_extractor.melW"] = mel
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    (tmp_path / "panns").mkdir()
    torch.save({"model": state, "iteration": 0}, tmp_path / "panns" / "Cnn14_mAP=0.431.pth")
    classifier = load_classifier("panns", tmp_path / "panns")
    assert torch.equal(classifier.model.mel_weights, mel)
    time = np.arange(32000) / 32000
    clips = [(np.sin(2 * np.pi * hz * time).astype(np.float32) * 0.5, 32000) for hz in (110, 440, 1760, 7040)]
    refs = _clips(4, 5, 32000)
    logits = classifier.classify_clips(clips)
    assert logits.shape == (4, 5)
    model.mel_weights = mel
    with torch.no_grad():
        assert np.allclose(logits[0], model(torch.from_numpy(clips[0][0])[None])[1][0].numpy(), atol=1e-5)
    embedders = {"panns": load_embedder("panns", tmp_path / "panns")}
    metrics = standard_metrics(clips, refs, CAPTIONS[:4], embedders=embedders, classifier=classifier)
    assert set(metrics) == {"fad_panns", "kl_ref_gen", "kl_gen_ref", "inception_score"}
    expected = kl_divergences(logits, classifier.classify_clips(refs))
    assert metrics["kl_ref_gen"] == pytest.approx(expected["kl_ref_gen"]) and metrics["kl_ref_gen"] > 1e-5
    assert metrics["kl_gen_ref"] == pytest.approx(expected["kl_gen_ref"]) and metrics["kl_gen_ref"] > 1e-5
    assert metrics["inception_score"] == pytest.approx(inception_score(logits)) and metrics["inception_score"] > 1.0
    with torch.no_grad():  # one clip embedding each, straight from the network
        gen_emb, ref_emb = (torch.cat([model(torch.from_numpy(w)[None])[0] for w, _ in x]).double().numpy()
                            for x in (clips, refs))
    assert metrics["fad_panns"] == pytest.approx(_frechet_by_eigenvalues(gen_emb, ref_emb), rel=1e-4)
    assert metrics["fad_panns"] > 1e-6


@pytest.mark.parametrize("name,expected", [("vggish", "vggish*.pth"), ("panns", "Cnn14*.pth"),
                                           ("clap", "config.json"), ("encodec", "config.json")])
def test_missing_weights_name_the_folder_and_the_files(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError, match=f"'{tmp_path / 'nowhere'}' does not exist") as error:
        load_embedder(name, tmp_path / "nowhere")
    assert expected in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"in '{tmp_path / 'empty'}'"):
        load_embedder(name, tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown embedder 'openl3'"):
        load_embedder("openl3", tmp_path)


# ------------------------------------------------------------------------------------- front ends, independently
# The reference recipes transcribed to numpy: torchvggish's mel_features.py (VGGish) and librosa's slaney mel
# filters with torchlibrosa's centred, reflect-padded power STFT (PANNs); librosa itself is not a dependency.


def _frames(signal: np.ndarray, window: int, hop: int) -> np.ndarray:
    count = 1 + (len(signal) - window) // hop
    return np.stack([signal[i * hop: i * hop + window] for i in range(count)])


def _vggish_log_mel(wav: np.ndarray) -> np.ndarray:
    """torchvggish ``waveform_to_examples`` at 16 kHz: ``[N]`` -> ``[P, 96, 64]``."""
    window, hop, fft = 400, 160, 512  # round(0.025 s), round(0.010 s), 2 ** ceil(log2(400))
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi / window * np.arange(window))
    magnitude = np.abs(np.fft.rfft(_frames(wav, window, hop) * periodic_hann, fft))  # [T, 257]

    def hertz_to_mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bins_mel = hertz_to_mel(np.linspace(0.0, 8000.0, 257))
    edges = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 64 + 2)
    weights = np.empty((257, 64))
    for i in range(64):
        lower, center, upper = edges[i: i + 3]
        weights[:, i] = np.maximum(0.0, np.minimum((bins_mel - lower) / (center - lower),
                                                   (upper - bins_mel) / (upper - center)))
    weights[0, :] = 0.0
    log_mel = np.log(magnitude @ weights + 0.01)  # [T, 64]
    return _frames(log_mel, 96, 96)  # [P, 96, 64]: non-overlapping 0.96 s examples


def _slaney_hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def _librosa_mel(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)`` (slaney scale and norm),
    ``[n_mels, 1 + n_fft // 2]``."""
    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_f = _slaney_mel_to_hz(np.linspace(_slaney_hz_to_mel(fmin), _slaney_hz_to_mel(fmax), n_mels + 2))
    fdiff, ramps = np.diff(mel_f), np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        weights[i] = np.maximum(0.0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    return weights * (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]


def _panns_log_mel(wav: np.ndarray) -> np.ndarray:
    """PANNs CNN14's front end at 32 kHz: ``[N]`` -> ``[T, 64]`` (torchlibrosa Spectrogram + LogmelFilterBank
    with ref 1.0, amin 1e-10, no top_db)."""
    n_fft, hop = 1024, 320
    padded = np.pad(wav.astype(np.float64), n_fft // 2, mode="reflect")
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # scipy's get_window("hann", fftbins=True)
    power = np.abs(np.fft.rfft(_frames(padded, n_fft, hop) * hann)) ** 2  # [T, 513]
    mel = power @ _librosa_mel(32000, n_fft, 64, 50.0, 14000.0).T
    return 10.0 * np.log10(np.maximum(mel, 1e-10))


def _test_signal(rate: int, seconds: float) -> np.ndarray:
    """Two tones and a little noise: energy across the mel bands."""
    t = np.arange(int(rate * seconds)) / rate
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t) + noise).astype(np.float32)


def test_vggish_front_end_matches_the_reference_recipe():
    wav = _test_signal(16000, 2.5)  # 248 frames: two whole examples, the rest dropped as the reference does
    ours = log_mel_patches(torch.from_numpy(wav)).numpy()  # [P, 1, 96, 64]
    reference = _vggish_log_mel(wav.astype(np.float64))
    assert ours.shape == (2, 1, 96, 64) and reference.shape == (2, 96, 64)
    np.testing.assert_allclose(ours[:, 0], reference, atol=2e-4, rtol=1e-4)
    assert reference.std() > 1.0  # a spectrogram with structure, not a constant


def test_panns_front_end_matches_librosa_mel_and_torchlibrosa_stft():
    model = Cnn14(widths=(4, 4), embedding=8, classes=5)
    reference_bank = _librosa_mel(32000, 1024, 64, 50.0, 14000.0)  # [64, 513]
    np.testing.assert_allclose(model.mel_weights.numpy().T, reference_bank, rtol=1e-5, atol=1e-9)
    wav = _test_signal(32000, 0.5)
    ours = model.log_mel(torch.from_numpy(wav)[None])[0, 0].numpy()  # [T, 64]
    reference = _panns_log_mel(wav)
    assert ours.shape == reference.shape == (51, 64)
    np.testing.assert_allclose(ours, reference, atol=2e-3, rtol=1e-4)
    assert reference.max() - reference.min() > 40  # dB: tones well above the noise floor


def _frechet_by_eigenvalues(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance with tr((S1 S2)^(1/2)) as the sum of the square roots of the eigenvalues of S1 S2
    (real and >= 0: S1 S2 is similar to a positive semi-definite matrix), valid for singular covariances too."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    roots = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0.0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * roots)


def test_fad_values_with_the_vggish_embedder(tmp_path):
    torch.manual_seed(0)
    model = VGGish(widths=(4, 4, 8, 8, 8, 8), hidden=(32, 32, 6)).eval()
    with torch.no_grad():  # He initialisation without biases: embeddings that depend on the input, as trained ones do
        for name, param in model.named_parameters():
            param.zero_() if name.endswith("bias") else torch.nn.init.kaiming_normal_(param, nonlinearity="relu")
    (tmp_path / "vggish").mkdir()
    torch.save(model.state_dict(), tmp_path / "vggish" / "vggish-10086976.pth")
    embedder = load_embedder("vggish", tmp_path / "vggish")
    rng = np.random.default_rng(4)
    time = np.arange(16000 * 2) / 16000
    tones = [((0.3 + 0.05 * i) * np.sin(2 * np.pi * (300 + 40 * i) * time)).astype(np.float32) for i in range(6)]
    noise = [(0.2 * rng.standard_normal(len(time))).astype(np.float32) for _ in range(6)]
    gen, ref = [(w, 16000) for w in tones], [(w, 16000) for w in noise]
    with torch.no_grad():  # the embeddings straight from the network on the reference front end's patches
        frames = {name: np.concatenate([model(torch.from_numpy(_vggish_log_mel(w.astype(np.float64)))[:, None]
                                              .float()).numpy() for w, _ in clips])
                  for name, clips in (("gen", gen), ("ref", ref))}
    assert frames["gen"].shape == (12, 6)  # 2 examples per 2 s clip
    fad = standard_metrics(gen, ref, CAPTIONS, embedders={"vggish": embedder})["fad_vggish"]
    assert fad == pytest.approx(_frechet_by_eigenvalues(frames["gen"], frames["ref"]), rel=1e-4)
    assert fad > 1.0  # tones and noise are far apart
    same = standard_metrics(gen, gen, CAPTIONS, embedders={"vggish": embedder})["fad_vggish"]
    assert same == pytest.approx(0.0, abs=1e-9)
    swapped = standard_metrics(ref, gen, CAPTIONS, embedders={"vggish": embedder})["fad_vggish"]
    assert swapped == pytest.approx(fad, rel=1e-9)  # symmetric


def _he(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Random weights with variance 2 / fan-in, so activations keep their scale through ReLU layers."""
    fan_in = int(np.prod(shape[1:]))
    return torch.randn(*shape, generator=generator) * (2.0 / fan_in) ** 0.5


def test_vggish_loader_runs_a_hand_made_torchvggish_state_dict(tmp_path):
    # the state dict is written by hand under torchvggish's names, not by tokenlm's module, and the network is
    # rebuilt here from torchvggish's VGG: 3x3 convs (ReLU; 2x2 max pool after the 1st, 2nd, 4th and 6th), NHWC
    # flattening, then Linear-ReLU x 3
    g = torch.Generator().manual_seed(0)
    widths, hidden = (4, 4, 8, 8, 8, 8), (16, 16, 8)
    state, channels = {}, 1
    for index, width in zip((0, 3, 6, 8, 11, 13), widths, strict=True):
        state[f"features.{index}.weight"] = _he(g, width, channels, 3, 3)
        state[f"features.{index}.bias"] = 0.1 * torch.randn(width, generator=g)
        channels = width
    sizes = (channels * 6 * 4, *hidden)
    for index, (a, b) in zip((0, 2, 4), zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        state[f"embeddings.{index}.weight"] = _he(g, b, a)
        state[f"embeddings.{index}.bias"] = 0.1 * torch.randn(b, generator=g)
    (tmp_path / "vggish").mkdir()
    torch.save(state, tmp_path / "vggish" / "vggish-10086976.pth")

    def reference(patches: torch.Tensor) -> torch.Tensor:
        x = patches
        for index in (0, 3, 6, 8, 11, 13):
            x = torch.relu(torch.nn.functional.conv2d(x, state[f"features.{index}.weight"],
                                                      state[f"features.{index}.bias"], padding=1))
            if index in (0, 3, 8, 13):
                x = torch.nn.functional.max_pool2d(x, 2)
        x = x.transpose(1, 3).transpose(1, 2).reshape(x.shape[0], -1)  # [B, H, W, C] flattened
        for index in (0, 2, 4):
            x = torch.relu(torch.nn.functional.linear(x, state[f"embeddings.{index}.weight"],
                                                      state[f"embeddings.{index}.bias"]))
        return x

    wav = _test_signal(16000, 2.0)
    patches = torch.from_numpy(_vggish_log_mel(wav.astype(np.float64))).float()[:, None]  # [2, 1, 96, 64]
    expected = reference(patches)
    embedded = load_embedder("vggish", tmp_path / "vggish").embed(torch.from_numpy(wav))
    assert embedded.shape == (2, 8) and float(expected.std()) > 0.01
    torch.testing.assert_close(embedded, expected, rtol=1e-3, atol=1e-4)


def test_panns_loader_runs_a_hand_made_cnn14_checkpoint(tmp_path):
    # a checkpoint under PANNs' names (with its own STFT and mel weights), run by Cnn14.forward transcribed here:
    # log-mel with the checkpoint's melW, bn0 over mel bins, conv blocks (avg pool 2x2, none after the last),
    # mean over frequency, max + mean over time, fc1 + ReLU (embedding), fc_audioset (logits, before the sigmoid)
    g = torch.Generator().manual_seed(1)
    widths, embedding, classes = (4, 4, 4, 4, 4, 8), 8, 5
    state = {"spectrogram_extractor.stft.conv_real.weight": torch.zeros(513, 1, 1024),
             "spectrogram_extractor.stft.conv_imag.weight": torch.zeros(513, 1, 1024),
             "logmel_extractor.melW": torch.from_numpy(_librosa_mel(32000, 1024, 64, 50.0, 14000.0).T).float()}

    def batch_norm(prefix: str, size: int, mean: float = 0.0, var: float = 1.0) -> None:
        state[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(size, generator=g)
        state[f"{prefix}.bias"] = 0.1 * torch.randn(size, generator=g)
        state[f"{prefix}.running_mean"] = mean + torch.randn(size, generator=g)
        state[f"{prefix}.running_var"] = var * (1 + torch.rand(size, generator=g))
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(1000)

    batch_norm("bn0", 64, mean=-40.0, var=300.0)
    channels = 1
    for block, width in enumerate(widths, start=1):
        state[f"conv_block{block}.conv1.weight"] = _he(g, width, channels, 3, 3)
        state[f"conv_block{block}.conv2.weight"] = _he(g, width, width, 3, 3)
        batch_norm(f"conv_block{block}.bn1", width)
        batch_norm(f"conv_block{block}.bn2", width)
        channels = width
    state["fc1.weight"], state["fc1.bias"] = _he(g, embedding, channels), 0.1 * torch.randn(embedding, generator=g)
    state["fc_audioset.weight"] = _he(g, classes, embedding)
    state["fc_audioset.bias"] = 0.1 * torch.randn(classes, generator=g)
    (tmp_path / "panns").mkdir()
    torch.save({"model": state, "iteration": 0}, tmp_path / "panns" / "Cnn14_mAP=0.431.pth")

    def bn(x: torch.Tensor, prefix: str) -> torch.Tensor:
        return torch.nn.functional.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                                              state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps=1e-5)

    wav = _test_signal(32000, 1.0)
    power = np.abs(np.fft.rfft(_frames(np.pad(wav.astype(np.float64), 512, mode="reflect"), 1024, 320)
                               * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)))) ** 2
    log_mel = 10 * np.log10(np.maximum(power @ state["logmel_extractor.melW"].double().numpy(), 1e-10))
    x = torch.from_numpy(log_mel).float()[None, None]  # [1, 1, T, 64]
    x = bn(x.transpose(1, 3), "bn0").transpose(1, 3)
    for block in range(1, len(widths) + 1):
        x = torch.relu(bn(torch.nn.functional.conv2d(x, state[f"conv_block{block}.conv1.weight"], padding=1),
                          f"conv_block{block}.bn1"))
        x = torch.relu(bn(torch.nn.functional.conv2d(x, state[f"conv_block{block}.conv2.weight"], padding=1),
                          f"conv_block{block}.bn2"))
        if block < len(widths):
            x = torch.nn.functional.avg_pool2d(x, 2)
    x = x.mean(dim=3)
    x = x.max(dim=2).values + x.mean(dim=2)
    expected_embedding = torch.relu(torch.nn.functional.linear(x, state["fc1.weight"], state["fc1.bias"]))
    expected_logits = torch.nn.functional.linear(expected_embedding, state["fc_audioset.weight"],
                                                 state["fc_audioset.bias"])

    clip = torch.from_numpy(wav)
    embedded = load_embedder("panns", tmp_path / "panns").embed(clip)
    logits = load_classifier("panns", tmp_path / "panns").logits(clip)
    assert float(expected_embedding.std()) > 1e-3 and float(expected_logits.std()) > 1e-3
    torch.testing.assert_close(embedded, expected_embedding, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(logits, expected_logits[0], rtol=1e-3, atol=1e-4)
