"""The inference dtype: ``from_pretrained(..., dtype=...)``, ``--dtype``, bf16 weights on a CPU with native bf16.

bf16 must not change what a trained model says: the next-token distributions of the shipped default LM in bf16
stay within a small KL of float32, generation stays reproducible per seed, and checkpoints stay float32 on disk.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from tokenlm import TextToAudio
from tokenlm.cli import main as cli_main
from tokenlm.common import device as device_module
from tokenlm.common import packed_linear as packed_linear_module
from tokenlm.common.device import (
    AUTO_BF16_MIN_PARAMS,
    check_dtype,
    cpu_has_native_bf16,
    uses_autocast,
    weight_dtype,
)
from tokenlm.common.packed_linear import PackableLinear, PackedParameter, is_released, prepacking_available
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.lm.patterns import build_pattern

PROMPTS = ["a high sine tone at 880 Hz", "some brown noise", "a woodblock ticking at 150 BPM"]
#: bounds on KL(fp32 || bf16) of the default LM's next-token distributions, in nats per token (measured on AMD
#: EPYC with AVX-512 BF16: mean 8.5e-5, max 7.8e-4 over 3 prompts x 4 codebooks x 103 steps)
KL_MEAN_BOUND = 2e-3
KL_MAX_BOUND = 2e-2


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Force the native-bf16 detection to ``value`` for the test (the answer is cached per process)."""

    def force(value: bool) -> None:
        monkeypatch.setenv("TOKENLM_CPU_BF16", "1" if value else "0")
        cpu_has_native_bf16.cache_clear()

    yield force
    cpu_has_native_bf16.cache_clear()


def test_dtype_names_are_checked() -> None:
    assert check_dtype("auto") == "auto" and check_dtype(torch.bfloat16) == "bfloat16"
    assert check_dtype(torch.float32) == "float32"
    with pytest.raises(ValueError, match=r"dtype must be one of \['auto', 'float32', 'bfloat16'\], got 'fp8'"):
        check_dtype("fp8")
    with pytest.raises(ValueError, match="torch.float16"):
        check_dtype(torch.float16)
    with pytest.raises(ValueError, match="'half'"):
        TextToAudio.from_pretrained("default", dtype="half")


def test_auto_follows_the_cpu(cpu_bf16) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cpu_bf16(True)
    assert weight_dtype("auto", cpu) == torch.bfloat16
    cpu_bf16(False)
    assert weight_dtype("auto", cpu) == torch.float32  # emulated bf16 would be slower than float32
    assert weight_dtype("bfloat16", cpu) == torch.bfloat16  # asked for: given
    assert weight_dtype("float32", cpu) == torch.float32
    for name in ("auto", "bfloat16", "float32"):  # CUDA keeps float32 weights and uses autocast instead
        assert weight_dtype(name, cuda) == torch.float32
    assert uses_autocast("auto", cuda) and uses_autocast("bfloat16", cuda) and not uses_autocast("float32", cuda)
    assert not uses_autocast("bfloat16", cpu)


def test_auto_keeps_float32_for_a_generator_too_small_to_gain(cpu_bf16, tiny_backend) -> None:
    cpu = torch.device("cpu")
    cpu_bf16(True)
    assert weight_dtype("auto", cpu, num_params=AUTO_BF16_MIN_PARAMS) == torch.bfloat16
    assert weight_dtype("auto", cpu, num_params=AUTO_BF16_MIN_PARAMS - 1) == torch.float32
    assert weight_dtype("bfloat16", cpu, num_params=10) == torch.bfloat16  # asked for by name: given
    assert tiny_backend.set_dtype("auto").generator_dtype == torch.float32  # a few thousand parameters
    assert tiny_backend.codec.decoder_dtype == torch.bfloat16  # the codec's decoder follows the CPU alone
    assert tiny_backend.set_dtype("bfloat16").generator_dtype == torch.bfloat16
    tiny_backend.set_dtype("float32")
    assert tiny_backend.codec.decoder_dtype == torch.float32


def test_cpu_detection_reads_the_flags(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TOKENLM_CPU_BF16", raising=False)
    fake = tmp_path / "cpuinfo"
    real_open = open

    def fake_open(path, *args, **kwargs):
        return real_open(fake if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(device_module, "open", fake_open, raising=False)
    for flags, expected in (("fpu avx512f avx512_bf16 sse", True), ("fpu amx_tile amx_bf16", True),
                            ("fpu avx2 avx512f avx512bw", False)):
        fake.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        cpu_has_native_bf16.cache_clear()
        assert cpu_has_native_bf16() is expected, flags
    cpu_has_native_bf16.cache_clear()


def _next_token_log_probs(model: TextToAudio, codes: torch.Tensor) -> torch.Tensor:
    """Teacher-forced next-token log-probabilities ``[B, K, S, card]`` (float32) of ``codes`` ``[B, K, T]``."""
    backend = model.backend
    condition = backend.conditioning.encode([{"description": p} for p in PROMPTS])
    pattern = build_pattern(backend.pattern_kind, codes.shape[1], codes.shape[-1], backend.delays)
    sequence = pattern.build(codes, backend.lm.config.special_token)
    context = backend.lm.condition_context(condition.to(None, backend.generator_dtype))
    with torch.no_grad():
        return backend.lm(sequence, context).float().log_softmax(-1)


def test_bf16_default_lm_stays_close_to_float32(tmp_path) -> None:
    fp32 = TextToAudio.from_pretrained("default", dtype="float32")
    bf16 = TextToAudio.from_pretrained("default", dtype="bfloat16")
    assert fp32.backend.generator_dtype == torch.float32 and bf16.backend.generator_dtype == torch.bfloat16
    assert next(bf16.backend.codec.parameters()).dtype == torch.float32  # only the LM changes
    backend = fp32.backend
    codes = backend.generate_tokens([{"description": p} for p in PROMPTS], 2.0, backend.make_sampling({}), seed=0)
    reference, low = _next_token_log_probs(fp32, codes), _next_token_log_probs(bf16, codes)
    kl = (reference.exp() * (reference - low)).sum(-1)  # [B, K, S]
    assert float(kl.mean()) < KL_MEAN_BOUND and float(kl.max()) < KL_MAX_BOUND, (float(kl.mean()), float(kl.max()))
    assert float(kl.mean()) > 0  # the two really ran in different precisions

    first = bf16.generate(PROMPTS[:2], 1.0, seed=3)
    again = bf16.generate(PROMPTS[:2], 1.0, seed=3)
    assert first.wav.dtype == torch.float32 and torch.equal(first.wav, again.wav)  # reproducible per seed

    saved = bf16.save_pretrained(tmp_path / "saved")
    with safe_open(str(saved / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert dtypes == {"F32"}  # checkpoints stay float32 on disk
    assert bf16.backend.generator_dtype == torch.bfloat16  # and the model keeps its inference dtype
    reloaded = TextToAudio.from_pretrained(saved, dtype="bfloat16")
    assert torch.equal(reloaded.generate(PROMPTS[:2], 1.0, seed=3).wav, first.wav)


def test_bf16_default_ldm_denoises_like_float32() -> None:
    fp32 = TextToAudio.from_pretrained("default-ldm", dtype="float32")
    bf16 = TextToAudio.from_pretrained("default-ldm", dtype="bfloat16")
    assert bf16.backend.generator_dtype == torch.bfloat16
    x = torch.randn(2, fp32.backend.dit.config.latent_dim, 50, generator=torch.Generator().manual_seed(0))
    outputs = []
    for model in (fp32, bf16):
        attributes = [{"description": p} for p in PROMPTS[:2]]
        outputs.append(model.backend.sample_latents(attributes, x, model.backend.make_sampling({"steps": 4}),
                                                    generator=torch.Generator().manual_seed(1)))
    assert outputs[1].dtype == torch.float32  # the scheduler works in float32
    error = (outputs[1] - outputs[0]).norm() / outputs[0].norm()
    assert 0 < float(error) < 0.05, float(error)
    audio = bf16.generate(PROMPTS[:1], 1.0, seed=0, steps=4)
    assert audio.wav.shape[-1] == bf16.sample_rate and torch.isfinite(audio.wav).all()


def test_cli_dtype_flag(tmp_path, capsys) -> None:
    out = tmp_path / "tone.wav"
    assert cli_main(["generate", "a high sine tone at 880 Hz", "--duration", "0.5", "--dtype", "bfloat16",
                     "--seed", "0", "--quiet", "--out", str(out)]) == 0
    assert out.is_file()
    with pytest.raises(SystemExit):
        cli_main(["generate", "a tone", "--dtype", "float16"])
    assert "invalid choice: 'float16'" in capsys.readouterr().err


needs_prepacking = pytest.mark.skipif(not prepacking_available(), reason="this torch has no oneDNN prepacked linear")


@pytest.fixture
def pack_everything(monkeypatch):
    """Pack the small test layers too (below MIN_PACKED_ELEMENTS they stay plain)."""
    monkeypatch.setattr(packed_linear_module, "MIN_PACKED_ELEMENTS", 0)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """bf16 products go through the same oneDNN kernel packed or not (bit-identical); float32 ones through MKL when
    plain, so they agree to rounding."""
    return torch.equal(a, b) if a.dtype == torch.bfloat16 else torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_prepacking
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_linear_matches_releases_its_weight_and_restores_it(dtype, pack_everything) -> None:
    generator = torch.Generator().manual_seed(0)
    layer = PackableLinear(64, 96).to(dtype)
    plain = layer.weight.detach().clone()
    x = torch.randn(2, 64, generator=generator).to(dtype)
    wider = torch.randn(3, 5, 64, generator=generator).to(dtype)  # other row counts and a batch dimension
    with torch.no_grad():
        expected = F.linear(x, plain, layer.bias), F.linear(wider, plain, layer.bias)
        assert layer.pack()
        assert layer.weight.shape == plain.shape and layer.weight.dtype == dtype
        assert layer.weight.untyped_storage().nbytes() == layer.weight.element_size()  # the plain copy is gone
        assert same(layer(x), expected[0]) and same(layer.run(wider), expected[1])
    y = layer(x)  # gradients wanted: the layer unpacks and runs F.linear, differentiable
    y.float().sum().backward()
    assert layer.packed is None and torch.equal(layer.weight.detach(), plain)
    assert layer.weight.grad is not None and torch.equal(y.detach(), expected[0])


def lm_and_context(dtype: torch.dtype) -> tuple[LMModel, object]:
    torch.manual_seed(0)
    lm = LMModel(LMConfig(dim=64, num_layers=2, num_heads=4, ffn_dim=128, cardinality=64)).eval().to(dtype)
    embeds = torch.randn(2, 5, 64).to(dtype)
    return lm, lm.cross_context(embeds, torch.ones(2, 5, dtype=torch.bool))


@needs_prepacking
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_step_with_packed_weights_equals_plain(dtype, pack_everything) -> None:
    lm, context = lm_and_context(dtype)
    sequence = torch.randint(0, 64, (2, 4, 6))
    outputs = []
    for packed in (False, True):
        if packed:
            assert lm.pack_weights() and lm.is_packed
        cache = lm.new_cache(2, 8, torch.device("cpu"), torch.float32)
        with torch.no_grad():
            lm(sequence[..., :1], context, cache)
            outputs.append(torch.stack([lm.decode_step(sequence[..., t], context, cache) for t in range(1, 6)]))
    if dtype == torch.float32:
        assert same(outputs[0], outputs[1])
    else:  # the packed step fuses GELU into fc1 (rounded once to bf16 instead of twice): within bf16 rounding
        error = (outputs[0].float() - outputs[1].float()).abs().max() / outputs[0].float().abs().max()
        assert error < 2e-2, error
    released = [p for p in lm.parameters() if is_released(p)]
    assert len(released) == 6 * 2 + 1  # every block matrix but the cross keys / values, and the heads
    with pytest.raises(RuntimeError, match="already packed elsewhere"):  # never the released zeros
        PackedParameter(lm.heads)
    copied = copy.deepcopy(lm)  # a copy holds the plain weights (the packed tensors have no storage to copy)
    assert not any(is_released(p) for p in copied.parameters())
    assert all(torch.equal(a, b) for a, b in zip(copied.state_dict().values(), lm.state_dict().values(), strict=True))
    for action in (copied.pack_weights, copied.unpack_weights):  # from two threads at once: exactly once each
        threads = [threading.Thread(target=action) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(torch.equal(a, b) for a, b in zip(copied.state_dict().values(), lm.state_dict().values(), strict=True))


@needs_prepacking
def test_packed_lm_gives_its_plain_weights_back_to_whatever_reads_them(pack_everything) -> None:
    lm, context = lm_and_context(torch.bfloat16)
    state = {name: tensor.clone() for name, tensor in lm.state_dict().items()}
    lm.pack_weights()
    assert all(torch.equal(state[name], tensor) for name, tensor in lm.state_dict().items())  # state_dict unpacks
    assert not lm.is_packed
    lm.pack_weights()
    lm.float()  # a cast reads the plain weights
    assert not lm.is_packed and torch.equal(lm.heads.detach(), state["heads"].float())
    lm.pack_weights()
    lm.load_state_dict({name: -tensor for name, tensor in state.items()})  # loading writes into plain weights
    assert torch.equal(lm.blocks[0].fc1.weight.detach(), -state["blocks.0.fc1.weight"].float())
    lm.pack_weights()
    lm.train()  # training needs plain, differentiable weights
    assert not lm.is_packed and not lm.pack_weights()  # and refuses to pack


@needs_prepacking
def test_only_matrices_worth_packing_are_packed() -> None:
    small = LMModel(LMConfig(dim=64, num_layers=1, num_heads=4, ffn_dim=128, cardinality=64)).eval()
    assert not small.pack_weights() and not any(is_released(p) for p in small.parameters())  # all below the bar
    wide_heads = LMModel(LMConfig(dim=64, num_layers=1, num_heads=4, ffn_dim=128, cardinality=1024)).eval()
    assert wide_heads.pack_weights()  # 4 x 1024 x 64 head weights: worth it; the 64-wide blocks are not
    assert [name for name, p in wide_heads.named_parameters() if is_released(p)] == ["heads"]
