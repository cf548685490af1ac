"""Training internals against values worked out by hand: weight-decay groups, the learning-rate schedule,
gradient clipping, the EMA (its update, its restore on resume, the export), the LM objective's masking and RR."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tokenlm.lm.objective import LMObjective, lm_loss
from tokenlm.train.main import compose_recipe, run
from tokenlm.train.optim import EMA, build_optimizer, build_scheduler
from tokenlm.train.state import read_metrics
from tokenlm.train.trainer import SIGNAL_AFTER_STEP_ENV, train_module

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from conftest import make_tiny_backend, metrics, tiny_recipe_overrides
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.conftest import make_tiny_backend, metrics, tiny_recipe_overrides

tiny_overrides = functools.partial(tiny_recipe_overrides, warmup_steps=2, settings=("conditioners.0.vocab_size=24",))


def _checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}"


# ----------------------------------------------------------------------------------------------- optimiser


def _expected_decay(module: nn.Module) -> set[str]:
    """The parameters that should decay, named by what owns them: the weight matrices of linear layers (and of
    multi-head attention's packed input projection) and the LM's output heads; never norms, biases or tables."""
    names = set()
    for prefix, child in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(child, nn.Linear):
            names.add(f"{dot}weight")
        elif isinstance(child, nn.MultiheadAttention):
            names.add(f"{dot}in_proj_weight")
    names.add("lm.heads")  # [K, card, D]: K output matrices
    return names


def test_weight_decay_reaches_matrices_only(spm_model_path):
    backend = make_tiny_backend(spm_model_path)
    module = nn.ModuleDict({"lm": backend.lm, "conditioning": backend.conditioning})
    module.lm.blocks[1].fc2.weight.requires_grad_(False)  # a frozen matrix is not optimised at all
    expected = _expected_decay(module) - {"lm.blocks.1.fc2.weight"}
    assert {"lm.embeddings", "conditioning.conditioners.description.token_embedding.weight",
            "conditioning.conditioners.description.position_embedding"}.isdisjoint(expected)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    lr, decay = 0.1, 0.5
    optimizer = build_optimizer(module, lr=lr, weight_decay=decay)
    for p in module.parameters():  # zero gradients: Adam's step is 0, only the decoupled decay moves weights
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in module.named_parameters():
        factor = 1 - lr * decay if name in expected else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=1e-6, atol=0, msg=name)
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(before) - 1


def test_warmup_then_cosine_learning_rates():
    param = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param], lr=2.0)
    scheduler = build_scheduler(optimizer, warmup_steps=4, total_steps=12, min_ratio=0.1)
    rates = []
    for _ in range(14):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # warm-up 1/4 .. 4/4, then 0.1 + 0.9 * (1 + cos(pi * i / 8)) / 2 for i = 0..8, then held at 0.1
    cosine = [1.0, 0.965746, 0.868198, 0.722208, 0.55, 0.377792, 0.231802, 0.134254, 0.1, 0.1]
    expected = [2.0 * m for m in [0.25, 0.5, 0.75, 1.0, *cosine]]
    assert rates == pytest.approx(expected, abs=2e-6)


def test_trainer_logs_its_schedule_and_clips_gradients(tmp_path, tiny_manifest):
    clip = 1e-3
    run(tiny_overrides(tmp_path / "run", tiny_manifest, 6, "solver.lr=0.002", "solver.min_lr_ratio=0.1",
                       f"solver.grad_clip={clip}", "checkpoint.every=1", "checkpoint.keep=1000"))
    records = [m for m in metrics(tmp_path / "run") if "loss" in m]
    # the learning rate each step applied: warm-up 1/2, 2/2, then cosine over the last 4 steps to 0.1
    assert [m["lr"] for m in records] == pytest.approx(
        [0.002 * m for m in (0.5, 1.0, 1.0, 0.868198, 0.55, 0.231802)], abs=1e-8)
    # after one AdamW step exp_avg = (1 - beta1) * g; clipping makes |g| the clip norm, not the logged raw norm
    state = torch.load(_checkpoint(tmp_path / "run", 1) / "training_state.pt", weights_only=True)
    beta1 = compose_recipe(tiny_overrides(tmp_path / "x", tiny_manifest, 6))["solver"]["betas"][0]
    moment = math.sqrt(sum(float(s["exp_avg"].double().pow(2).sum()) for s in state["optimizer"]["state"].values()))
    assert records[0]["grad_norm"] > 100 * clip
    assert moment == pytest.approx((1 - beta1) * clip, rel=1e-3)


# ----------------------------------------------------------------------------------------------- EMA


def test_ema_update_and_copy_values():
    module = nn.Linear(3, 2)
    with torch.no_grad():
        module.weight.fill_(1.0)
        module.bias.fill_(-2.0)
    ema = EMA(module, decay=0.75)
    with torch.no_grad():
        module.weight.fill_(5.0)
        module.bias.fill_(2.0)
    ema.update(module)  # 0.75 * old + 0.25 * new
    assert torch.equal(ema.shadow["weight"], torch.full((2, 3), 2.0)) and torch.equal(ema.shadow["bias"],
                                                                                        torch.full((2,), -1.0))
    ema.update(module)
    assert torch.equal(ema.shadow["weight"], torch.full((2, 3), 2.75))
    ema.copy_to(module)
    assert torch.equal(module.weight.detach(), torch.full((2, 3), 2.75))
    restored = EMA(nn.Linear(3, 2), decay=0.75)
    restored.load_state_dict(ema.state_dict())
    assert all(torch.equal(restored.shadow[k], v) for k, v in ema.shadow.items())


def test_ema_copies_into_a_model_packed_for_inference(monkeypatch):
    """Samples written at the last step pack the model (generation on CPU); the export's EMA copy must still land."""
    from tokenlm.common import packed_linear
    from tokenlm.lm.model import LMConfig, LMModel

    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 0)
    lm = LMModel(LMConfig(dim=32, num_layers=1, num_heads=2, ffn_dim=64, cardinality=16))
    ema = EMA(lm, decay=0.5)
    with torch.no_grad():
        for param in lm.parameters():
            param.add_(1.0)
    ema.update(lm)
    expected = {name: tensor.clone() for name, tensor in ema.shadow.items()}
    lm.eval()
    if not lm.pack_weights():
        pytest.skip("this torch has no oneDNN prepacked linear")
    ema.copy_to(lm)
    assert not lm.is_packed
    assert all(torch.equal(param.detach(), expected[name]) for name, param in lm.named_parameters())


def test_resume_restores_the_ema_exactly_and_export_holds_it(tmp_path, tiny_manifest, monkeypatch):
    common = ("solver.cfg_dropout=0.3", "solver.ema_decay=0.9")
    straight = tmp_path / "straight"
    export = run(tiny_overrides(straight, tiny_manifest, 8, *common, "checkpoint.every=1", "checkpoint.keep=1000"))
    # the EMA follows ema_s = d * ema_(s-1) + (1 - d) * weights_s at every step of the run
    for step in range(2, 9):
        previous, current = (load_file(str(_checkpoint(straight, s) / "ema.safetensors")) for s in (step - 1, step))
        weights = load_file(str(_checkpoint(straight, step) / "model.safetensors"))
        for name, value in current.items():
            torch.testing.assert_close(value, 0.9 * previous[name] + 0.1 * weights[name], rtol=1e-5, atol=1e-7)

    cut = tmp_path / "cut"
    monkeypatch.setenv(SIGNAL_AFTER_STEP_ENV, "6:SIGTERM")  # a SIGTERM after step 6: checkpoint and stop
    assert run(tiny_overrides(cut, tiny_manifest, 8, *common, "checkpoint.every=4")) == cut
    monkeypatch.delenv(SIGNAL_AFTER_STEP_ENV)
    assert (cut / "checkpoints" / "latest").read_text() == "step_00000006" and not (cut / "export").exists()
    with open(cut / "metrics.jsonl", "a") as handle:  # what a kill in the middle of a write leaves behind
        handle.write('{"step": 7, "ce": 4.1')
    resumed_export = run(tiny_overrides(cut, tiny_manifest, 8, *common, "checkpoint.every=4", "resume=true"))
    assert [m["step"] for m in metrics(cut)] == list(range(1, 9))
    assert [m["loss"] for m in metrics(cut)] == [m["loss"] for m in metrics(straight)]

    ema = load_file(str(_checkpoint(straight, 8) / "ema.safetensors"))
    resumed_ema = load_file(str(_checkpoint(cut, 8) / "ema.safetensors"))
    assert ema.keys() == resumed_ema.keys()
    for name, value in ema.items():
        assert torch.equal(resumed_ema[name], value), name
    weights = load_file(str(_checkpoint(straight, 8) / "model.safetensors"))
    for folder in (export, resumed_export):
        exported = load_file(str(folder / "model.safetensors"))
        assert set(ema) <= set(exported)
        for name, value in ema.items():
            assert torch.equal(exported[name], value.to(exported[name].dtype)), name
        for name in set(exported) - set(ema):  # buffers and frozen tensors: as trained
            assert torch.equal(exported[name], weights[name]), name
    assert sum(not torch.equal(ema[n], weights[n]) for n in ema) > len(ema) / 2  # the EMA is not the weights


def test_metrics_reader_drops_only_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.5}\n\n{"step": 2, "loss": 2.25}\n{"step": 3, "lo')
    assert read_metrics(path) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.25}]
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "lo\n{"step": 3, "loss": 2.0}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_metrics(path)


# ----------------------------------------------------------------------------------------------- LM objective


def _pool(x: torch.Tensor, keep: torch.Tensor, mode: str) -> torch.Tensor:
    """``[N, D]`` rows where ``keep`` -> ``[D]`` by max or mean."""
    rows = x[keep]
    return rows.max(dim=0).values if mode == "max" else rows.mean(dim=0)


def _rr(text: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """sum over b != b' of (cos(T_b, T_b') - cos(A_b, A_b'))^2 / (B (B - 1)), pair by pair."""
    batch = text.shape[0]
    total = torch.zeros(())
    for b in range(batch):
        for c in range(batch):
            if b != c:
                diff = torch.cosine_similarity(text[b], text[c], dim=0) - torch.cosine_similarity(audio[b], audio[c],
                                                                                                   dim=0)
                total = total + diff**2
    return total / (batch * (batch - 1))


@pytest.mark.parametrize("mode,pooling,dropped", [("cfg", "max", [True, False, True]),
                                                  ("cfg", "mean", [True, True, False]),
                                                  ("all", "mean", [False, True, False]),
                                                  ("cfg", "max", [False, False, False])])
def test_lm_loss_values_with_padding_and_rr(spm_model_path, mode, pooling, dropped):
    backend = make_tiny_backend(spm_model_path)
    lm, K, T, special = backend.lm, 4, 8, backend.lm.config.special_token
    lengths = [8, 5, 3]
    codes = torch.randint(0, 128, (3, K, T), generator=torch.Generator().manual_seed(0))
    frame_mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]  # [B, T]
    attributes = [{"description": d} for d in ("a steady tone at 300 hz", "soft white noise hiss", "a dog barks")]
    dropped_t = torch.tensor(dropped)
    losses = lm_loss(backend, codes, frame_mask, attributes, dropped_t, LMObjective(3.0, pooling, mode))

    # the delay pattern by hand: step 0 is the start token, frame t of codebook k sits at step t + k + 1
    steps = torch.full((3, K, T + K), special)
    for k in range(K):
        steps[:, k, k + 1: k + 1 + T] = codes[:, k]
    shown = [{"description": None} if d else a for a, d in zip(attributes, dropped, strict=True)]
    with torch.no_grad():
        condition = backend.conditioning.encode(shown)
        logits, hidden = lm(steps[..., :-1], lm.condition_context(condition), return_hidden=True)
    # cross-entropy: step t + k + 1 is predicted at position t + k; padded frames are not targets
    per_codebook = []
    for k in range(K):
        terms = [-logits[b, k, t + k].log_softmax(-1)[codes[b, k, t]] for b in range(3) for t in range(lengths[b])]
        per_codebook.append(torch.stack(terms).mean())
    ce = torch.stack(per_codebook).mean()
    torch.testing.assert_close(losses["ce"], ce, rtol=1e-5, atol=1e-5)

    rows = list(range(3)) if mode == "all" else [b for b in range(3) if dropped[b]]
    if not rows:  # no condition-dropped sample: RR does not apply to this batch
        assert "rr" not in losses and torch.equal(losses["loss"], losses["ce"])
        return
    with torch.no_grad():
        tokens = backend.conditioning.encode(attributes).as_sequence()  # the text RR pools is never dropped
    text = torch.stack([_pool(tokens.embeds[b], tokens.mask[b], pooling) for b in rows])
    # a hidden position counts when it predicts some codebook's valid frame: t + k for t < length
    positions = torch.arange(T + K - 1)
    audio = torch.stack([_pool(hidden[b], positions < lengths[b] + K - 1, pooling) for b in rows])
    rr = _rr(text, audio)
    assert float(rr) > 1e-4
    torch.testing.assert_close(losses["rr"], rr, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses["loss"], ce + 3.0 * rr, rtol=1e-5, atol=1e-5)


def test_recipe_rr_options_reach_the_objective(spm_model_path, tmp_path, tiny_manifest):
    backend = make_tiny_backend(spm_model_path)
    for pooling, mode, enabled in (("mean", "all", "true"), ("max", "cfg", "true"), ("mean", "all", "false")):
        cfg = compose_recipe(tiny_overrides(tmp_path, tiny_manifest, 1, f"solver.rr.pooling={pooling}",
                                            f"solver.rr.mode={mode}", f"solver.rr.enabled={enabled}"))
        objective = train_module(cfg, backend).objective
        assert objective == LMObjective(3.0, pooling, mode if enabled == "true" else "off")


def test_rr_on_every_batch_with_mode_all_and_mean_pooling(tmp_path, tiny_manifest):
    run(tiny_overrides(tmp_path / "run", tiny_manifest, 3, "solver.cfg_dropout=0.0", "solver.rr.mode=all",
                       "solver.rr.pooling=mean", "checkpoint.every=0"))
    records = [m for m in metrics(tmp_path / "run") if "loss" in m]
    assert len(records) == 3 and all(m["cfg"] == 0.0 for m in records)  # no batch was condition-dropped
    for m in records:
        assert m["rr"] > 0 and m["loss"] == pytest.approx(m["ce"] + 3.0 * m["rr"], abs=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_follows_the_cpu_run(tmp_path, tiny_manifest):
    # the GPU variant of the (CPU-pinned) training tests: same initial model and batches, bf16 autocast on CUDA
    common = ("solver.cfg_dropout=0.0", "checkpoint.every=0")
    run(tiny_overrides(tmp_path / "cpu", tiny_manifest, 3, *common))
    run(tiny_overrides(tmp_path / "cuda", tiny_manifest, 3, *common, "device=cuda"))
    cpu, cuda = ([m for m in metrics(tmp_path / name) if "loss" in m] for name in ("cpu", "cuda"))
    assert [m["step"] for m in cuda] == [1, 2, 3] and all(math.isfinite(m["loss"]) for m in cuda)
    assert cuda[0]["ce"] == pytest.approx(cpu[0]["ce"], rel=2e-2)  # step 1: the same weights, the same batch
    assert [m["lr"] for m in cuda] == [m["lr"] for m in cpu]
