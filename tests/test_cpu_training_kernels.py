"""CPU float32 training kernels: oneDNN linear layers and the fused heads + cross-entropy, against plain PyTorch."""

import pytest
import torch
import torch.nn.functional as F

from tokenlm.common import onednn_linear
from tokenlm.common.onednn_linear import OneDNNLinear, linear, onednn_available, routes_through_onednn
from tokenlm.lm import head_loss
from tokenlm.lm.head_loss import fused_head_cross_entropy
from tokenlm.lm.losses import codebook_cross_entropy
from tokenlm.lm.model import LMConfig, LMModel

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch has no oneDNN linear kernel")


def grads(*tensors):
    return [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("bias", [False, True])
def test_onednn_linear_matches_f_linear_and_its_gradients(bias):
    torch.manual_seed(0)
    x = torch.randn(3, 37, 96, requires_grad=True)  # [B, T, in]
    weight = torch.randn(160, 96, requires_grad=True)
    b = torch.randn(160, requires_grad=True) if bias else None
    upstream = torch.randn(3, 37, 160)
    ours = OneDNNLinear.apply(x, weight, b)
    assert ours.shape == (3, 37, 160)
    (ours * upstream).sum().backward()
    ours_grads = grads(x, weight, *([b] if bias else []))
    for t in (x, weight, b):
        if t is not None:
            t.grad = None
    reference = F.linear(x, weight, b)
    (reference * upstream).sum().backward()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-4)
    for got, want in zip(ours_grads, grads(x, weight, *([b] if bias else [])), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_onednn_linear_differentiates_only_what_asks_for_it():
    torch.manual_seed(0)
    frozen = torch.randn(64, 32)  # a frozen weight: only the input's gradient
    x = torch.randn(10, 32, requires_grad=True)
    OneDNNLinear.apply(x, frozen, None).sum().backward()
    torch.testing.assert_close(x.grad, frozen.sum(dim=0).expand(10, 32), rtol=1e-5, atol=1e-5)
    weight = torch.randn(64, 32, requires_grad=True)  # a fixed input: only the weight's gradient
    inputs = torch.randn(10, 32)
    OneDNNLinear.apply(inputs, weight, None).sum().backward()
    torch.testing.assert_close(weight.grad, inputs.sum(dim=0).expand(64, 32), rtol=1e-5, atol=1e-5)


def test_onednn_linear_takes_a_strided_weight_as_it_is():
    torch.manual_seed(0)
    stored = torch.randn(48, 80, requires_grad=True)  # the layer's weight is its transposed view [80, 48]
    x = torch.randn(6, 48, requires_grad=True)
    OneDNNLinear.apply(x, stored.t(), None).square().sum().backward()
    got = grads(x, stored)
    x.grad = stored.grad = None
    F.linear(x, stored.t()).square().sum().backward()
    for ours, want in zip(got, grads(x, stored), strict=True):
        torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-4)

def test_linear_routes_only_differentiated_float32_cpu_products_of_large_weights():
    big = torch.randn(512, 256, requires_grad=True)  # 131 072 elements >= MIN_ONEDNN_ELEMENTS
    x = torch.randn(4, 256)
    assert big.numel() >= onednn_linear.MIN_ONEDNN_ELEMENTS
    assert routes_through_onednn(x, big)
    assert not routes_through_onednn(x, big.detach())  # nothing to differentiate: inference
    with torch.no_grad():
        assert not routes_through_onednn(x, big)
    assert not routes_through_onednn(x.bfloat16(), big.bfloat16())
    assert not routes_through_onednn(x[:, :16], torch.randn(16, 16, requires_grad=True))  # small weight
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not routes_through_onednn(x, big)  # autocast decides the dtype there
    out = linear(x, big)
    assert out.grad_fn is not None and "OneDNNLinear" in type(out.grad_fn).__name__
    torch.testing.assert_close(out, F.linear(x, big), rtol=1e-5, atol=1e-4)


def make_case(seed=0, batch=3, steps=41, codebooks=3, card=50, dim=24, bias=True):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, steps, dim, generator=generator, requires_grad=True)
    weight = (torch.randn(codebooks, card, dim, generator=generator) * 0.3).requires_grad_()
    b = (torch.randn(codebooks, card, generator=generator) * 0.5).requires_grad_() if bias else None
    targets = torch.randint(0, card, (batch, codebooks, steps), generator=generator)
    valid = torch.rand(batch, codebooks, steps, generator=generator) > 0.2
    valid[:, -1] = False  # a codebook with no valid position counts 0
    targets[~valid] = -7  # whatever sits at invalid positions is never read
    return hidden, weight, b, targets, valid


def reference_loss(hidden, weight, bias, targets, valid):
    codebooks, card, dim = weight.shape
    logits = F.linear(hidden, weight.reshape(-1, dim), None if bias is None else bias.reshape(-1))
    logits = logits.view(*hidden.shape[:2], codebooks, card).transpose(1, 2)  # [B, K, S, card]
    return codebook_cross_entropy(logits, targets, valid)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk_rows", [7, 256])
def test_fused_head_cross_entropy_matches_the_logits_path(monkeypatch, bias, chunk_rows):
    monkeypatch.setattr(head_loss, "CHUNK_ROWS", chunk_rows)  # 7: many chunks and a ragged last one
    hidden, weight, b, targets, valid = make_case(bias=bias)
    params = [hidden, weight] + ([b] if bias else [])
    loss, per_codebook = fused_head_cross_entropy(hidden, weight, b, targets, valid)
    (2.5 * loss).backward()  # the incoming gradient scales the precomputed ones
    fused_grads = grads(*params)
    for p in params:
        p.grad = None
    want_loss, want_per_codebook = reference_loss(hidden, weight, b, targets, valid)
    (2.5 * want_loss).backward()
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per_codebook, want_per_codebook.detach(), rtol=1e-5, atol=1e-6)
    assert per_codebook[-1] == 0 and not per_codebook.requires_grad
    for got, want in zip(fused_grads, grads(*params), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_fused_head_cross_entropy_without_gradients_gives_the_same_loss():
    hidden, weight, b, targets, valid = make_case(seed=1)
    with torch.no_grad():
        loss, per_codebook = fused_head_cross_entropy(hidden, weight, b, targets, valid)
        want_loss, want_per_codebook = reference_loss(hidden, weight, b, targets, valid)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per_codebook, want_per_codebook, rtol=1e-5, atol=1e-6)
    # uniform logits: the cross-entropy of every valid term is log(card)
    zero = torch.zeros_like(hidden)
    uniform, _ = fused_head_cross_entropy(zero, weight.detach(), None, targets, valid)
    assert uniform.item() == pytest.approx(torch.tensor(50.0).log().item() * 2 / 3, rel=1e-5)


def lm_and_batch(dtype=torch.float32):
    torch.manual_seed(0)
    lm = LMModel(LMConfig(num_codebooks=2, cardinality=300, dim=256, num_layers=1, num_heads=4, ffn_dim=512)).to(dtype)
    sequence = torch.randint(0, 300, (2, 2, 30))
    valid = torch.rand(2, 2, 29) > 0.1
    condition = (torch.randn(2, 5, 256, dtype=dtype), torch.ones(2, 5, dtype=torch.bool))
    return lm, sequence, valid, condition


def test_lm_cross_entropy_is_the_loss_of_its_logits_with_the_same_gradients():
    lm, sequence, valid, condition = lm_and_batch()
    hidden = lm.hidden_states(sequence[..., :-1], lm.cross_context(*condition))
    loss, per_codebook = lm.cross_entropy(hidden, sequence[..., 1:], valid)
    loss.backward()
    fused = {name: p.grad.clone() for name, p in lm.named_parameters() if p.grad is not None}
    lm.zero_grad()
    logits = lm(sequence[..., :-1], lm.cross_context(*condition))
    want, want_per_codebook = codebook_cross_entropy(logits, sequence[..., 1:], valid)
    want.backward()
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per_codebook, want_per_codebook.detach(), rtol=1e-5, atol=1e-6)
    assert set(fused) == {name for name, p in lm.named_parameters() if p.grad is not None}
    for name, p in lm.named_parameters():
        torch.testing.assert_close(fused[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_lm_cross_entropy_of_a_bf16_model_goes_through_the_logits():
    lm, sequence, valid, condition = lm_and_batch(torch.bfloat16)
    with torch.no_grad():
        hidden = lm.hidden_states(sequence[..., :-1], lm.cross_context(*condition))
        loss, _ = lm.cross_entropy(hidden, sequence[..., 1:], valid)
        want, _ = codebook_cross_entropy(lm.logits(hidden), sequence[..., 1:], valid)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, want)


def test_lm_cross_entropy_of_a_model_packed_for_inference_reads_the_packed_heads():
    lm, sequence, valid, condition = lm_and_batch()
    with torch.no_grad():
        hidden = lm.hidden_states(sequence[..., :-1], lm.cross_context(*condition))
        want, want_per_codebook = lm.cross_entropy(hidden, sequence[..., 1:], valid)
        lm.eval()
        assert lm.pack_weights() and lm.packed_parameter("heads") is not None
        loss, per_codebook = lm.cross_entropy(hidden, sequence[..., 1:], valid)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per_codebook, want_per_codebook, rtol=1e-5, atol=1e-6)
