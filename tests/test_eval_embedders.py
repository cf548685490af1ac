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
    assert fad >= 0.0


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
    assert metrics["fad_panns"] > 0.0


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
