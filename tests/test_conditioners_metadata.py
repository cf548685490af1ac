"""Timing, categorical (lut) and numeric conditioners; fusing routes; CFG and attribute dropout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model, save_model

from conditioners import Condition, build_conditioner
from conditioners.dropout import ConditionDropout, DropoutDraw
from conditioners.fuser import FusedCondition, fuse_conditions
from conditioners.lut import LUTConditioner
from conditioners.number import NumberConditioner
from conditioners.provider import ConditioningProvider
from conditioners.timing import TimingConditioner


def seeded(factory, seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return factory()


def round_trip(conditioner, tmp_path: Path, seed: int = 1):
    """Rebuild through the registry from the JSON config and the saved weights, as a checkpoint does."""
    config = json.loads(json.dumps(conditioner.config()))
    conditioner.save_assets(tmp_path)
    save_model(conditioner, str(tmp_path / "model.safetensors"))
    rebuilt = seeded(lambda: build_conditioner(conditioner.kind, config, tmp_path), seed)
    load_model(rebuilt, str(tmp_path / "model.safetensors"))
    return rebuilt


# ---------------------------------------------------------------------------------------------- timing


def test_timing_shapes_masks_and_interpolation() -> None:
    timing = seeded(lambda: TimingConditioner("seconds_total", 8, min_seconds=0, max_seconds=47))
    out = timing.encode([3, 3.25, 47, None, 0.0])
    assert out.embeds.shape == (5, 1, 8) and out.mask.tolist() == [[True], [True], [True], [False], [True]]
    table = timing.embedding.weight.detach()
    torch.testing.assert_close(out.embeds[0, 0], table[3])
    torch.testing.assert_close(out.embeds[1, 0], 0.75 * table[3] + 0.25 * table[4])
    torch.testing.assert_close(out.embeds[2, 0], table[47])
    assert torch.equal(out.embeds[3], torch.zeros(1, 8))


def test_timing_out_of_range_and_wrong_types_are_clear_errors() -> None:
    timing = TimingConditioner("seconds_start", 8, min_seconds=0, max_seconds=30)
    with pytest.raises(ValueError, match=r"'seconds_start' got 31.5 s, outside the configured range \[0, 30\] s"):
        timing.encode([31.5])
    with pytest.raises(ValueError, match=r"got -1 s"):
        timing.encode([-1])
    with pytest.raises(ValueError, match=r"takes int or float values .* got str '10'"):
        timing.encode(["10"])
    with pytest.raises(ValueError, match="got bool True"):
        timing.encode([True])
    with pytest.raises(ValueError, match="max > min"):
        TimingConditioner("seconds_total", 8, min_seconds=5, max_seconds=5)


def test_timing_round_trip_and_gradients(tmp_path: Path) -> None:
    timing = seeded(lambda: TimingConditioner("seconds_total", 8, max_seconds=20))
    rebuilt = round_trip(timing, tmp_path)
    assert torch.equal(rebuilt.encode([7.5, None]).embeds, timing.encode([7.5, None]).embeds)
    timing.encode([7.5]).embeds.sum().backward()
    assert timing.embedding.weight.grad[7:9].abs().sum() > 0 and timing.embedding.weight.grad[:7].abs().sum() == 0


# ---------------------------------------------------------------------------------------------- lut


def test_lut_unknown_values_map_to_the_learned_unknown_row() -> None:
    genre = seeded(lambda: LUTConditioner("genre", 8, values=["jazz", "Rock", "rock ", "hip  hop"]))
    assert genre.values == ["jazz", "rock", "hip hop"]
    out = genre.encode(["JAZZ", "polka", " Hip Hop", None])
    table = genre.embedding.weight.detach()
    torch.testing.assert_close(out.embeds[:, 0], torch.stack([table[1], table[0], table[3], torch.zeros(8)]))
    assert out.mask[:, 0].tolist() == [True, True, True, False]
    genre.encode(["polka"]).embeds.sum().backward()  # the unknown row is learned
    assert genre.embedding.weight.grad[0].abs().sum() > 0


def test_lut_lists_give_one_token_per_item() -> None:
    instrument = seeded(lambda: LUTConditioner("instrument", 8, values=["piano", "drums", "bass"], max_items=3))
    out = instrument.encode([["piano", "drums"], "bass", None])
    assert out.embeds.shape == (3, 2, 8) and out.mask.tolist() == [[True, True], [True, False], [False, False]]
    with pytest.raises(ValueError, match="list of 1 to 3 categories"):
        instrument.encode([["piano", "drums", "bass", "flute"]])
    with pytest.raises(ValueError, match="list items must be non-empty strings, got 3"):
        instrument.encode([["piano", 3]])
    with pytest.raises(ValueError, match="takes str or list or tuple values .* got int 120"):
        instrument.encode([120])
    with pytest.raises(ValueError, match="needs `values`"):
        LUTConditioner("genre", 8, values=[])


def test_lut_round_trip(tmp_path: Path) -> None:
    genre = seeded(lambda: LUTConditioner("genre", 8, values=["jazz", "rock"]))
    rebuilt = round_trip(genre, tmp_path)
    assert rebuilt.values == genre.values
    assert torch.equal(rebuilt.encode(["rock", "polka", None]).embeds, genre.encode(["rock", "polka", None]).embeds)


# ---------------------------------------------------------------------------------------------- number


def test_number_conditioner(tmp_path: Path) -> None:
    bpm = seeded(lambda: NumberConditioner("bpm", 8, min_value=40, max_value=240, fourier_dim=16))
    out = bpm.encode([40, 120.5, 240, None])
    assert out.embeds.shape == (4, 1, 8) and out.mask[:, 0].tolist() == [True, True, True, False]
    assert not torch.allclose(out.embeds[0], out.embeds[1]) and torch.equal(out.embeds[3], torch.zeros(1, 8))
    with pytest.raises(ValueError, match=r"'bpm' got 300, outside the configured range \[40, 240\]"):
        bpm.encode([300])
    with pytest.raises(ValueError, match="got str 'fast'"):
        bpm.encode(["fast"])
    with pytest.raises(ValueError, match="outside"):
        bpm.encode([float("nan")])
    rebuilt = round_trip(bpm, tmp_path)
    assert torch.equal(rebuilt.encode([99]).embeds, bpm.encode([99]).embeds)


def test_number_conditioner_values() -> None:
    # Stable Audio's number embedder: t = (value - min) / (max - min), features [t, sin(2 pi w t), cos(2 pi w t)]
    # with learned frequencies w, then a linear projection; a missing value is a zero, masked token
    bpm = seeded(lambda: NumberConditioner("bpm", 8, min_value=40, max_value=240, fourier_dim=16))
    out = bpm.encode([40, 120.5, 240, None])
    w = bpm.embedder.weights.detach()  # [8]
    for row, value in enumerate((40, 120.5, 240)):
        t = (value - 40) / 200
        features = torch.cat([torch.tensor([t]), torch.sin(2 * torch.pi * w * t), torch.cos(2 * torch.pi * w * t)])
        expected = bpm.embedder.proj.weight.detach() @ features + bpm.embedder.proj.bias.detach()
        torch.testing.assert_close(out.embeds[row, 0], expected, rtol=1e-5, atol=1e-6)
    assert out.mask.tolist() == [[True], [True], [True], [False]] and torch.equal(out.embeds[3], torch.zeros(1, 8))


# ---------------------------------------------------------------------------------------------- fusing


def _cond(batch: int, length: int, dim: int, valid: list[int], seed: int) -> Condition:
    embeds = torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(length)[None] < torch.tensor(valid)[:, None]
    return Condition(embeds * mask[..., None], mask)


def test_fuse_routes_concatenate_and_pool() -> None:
    a, b = _cond(2, 3, 4, [3, 1], 0), _cond(2, 2, 4, [2, 0], 1)
    c, d = _cond(2, 1, 4, [1, 1], 2), _cond(2, 4, 4, [2, 0], 3)
    fused = fuse_conditions([("cross", a), ("prepend", c), ("cross", b), ("sum", d), ("sum", c)])
    assert fused.cross.embeds.shape == (2, 5, 4)
    assert fused.cross.mask.tolist() == [[True] * 5, [True, False, False, False, False]]
    assert torch.equal(fused.prepend.embeds, c.embeds)
    expected = d.embeds[:, :2].mean(dim=1) * torch.tensor([[1.0], [0.0]]) + c.embeds[:, 0]  # masked mean + token
    torch.testing.assert_close(fused.sum.embeds[:, 0], expected)
    assert fused.sum.mask.tolist() == [[True], [True]]
    assert fused.as_sequence().embeds.shape == (2, 5 + 1 + 1, 4)
    both = fused.cat_batch(fused)
    assert both.batch_size == 4 and both.cross.embeds.shape == (4, 5, 4)
    with pytest.raises(ValueError, match="cannot stack"):
        fused.cat_batch(FusedCondition(cross=a))


def test_provider_routes_and_errors() -> None:
    timing = TimingConditioner("seconds_total", 4, max_seconds=10)
    genre = LUTConditioner("genre", 4, values=["jazz"])
    provider = ConditioningProvider([timing, genre], {"genre": "sum"})
    assert provider.routes == {"seconds_total": "cross", "genre": "sum"} and provider.routed_to("sum") == ["genre"]
    fused = provider.encode([{"seconds_total": 3, "genre": "jazz"}, {}])
    assert fused.cross.embeds.shape == (2, 1, 4) and fused.sum.embeds.shape == (2, 1, 4) and fused.prepend is None
    assert fused.sum.mask.tolist() == [[True], [False]]
    with pytest.raises(ValueError, match="unknown fuse route 'add'; choose one of cross, prepend, sum"):
        ConditioningProvider([timing], {"seconds_total": "add"})
    with pytest.raises(ValueError, match=r"routes name attribute\(s\) \['mood'\]"):
        ConditioningProvider([timing], {"mood": "sum"})
    with pytest.raises(ValueError, match=r"unknown attribute\(s\) \['bpm'\]"):
        provider.encode([{"bpm": 120}])


# ---------------------------------------------------------------------------------------------- dropout


def test_batch_level_cfg_dropout_statistics_and_determinism() -> None:
    drop = ConditionDropout(cfg=0.3)
    draws = [drop.draw(8, gen) for gen in [torch.Generator().manual_seed(0)] for _ in range(2000)]
    whole = torch.stack([d.dropped for d in draws])  # [N, 8]
    assert bool((whole.all(dim=1) | ~whole.any(dim=1)).all())  # all or nothing per batch
    assert whole[:, 0].float().mean().item() == pytest.approx(0.3, abs=0.03)
    # the draw consumes the generator exactly like the trainer's historical batch-level draw
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(20):
        expected = (torch.rand(1, generator=gen_b) < 0.3).expand(8)
        assert torch.equal(drop.draw(8, gen_a).dropped, expected)


def test_per_sample_and_attribute_dropout_statistics() -> None:
    drop = ConditionDropout(cfg=0.1, per_sample=True, attributes={"genre": 0.5, "description": 0.2})
    gen = torch.Generator().manual_seed(1)
    draws = [drop.draw(16, gen) for _ in range(800)]
    dropped = torch.stack([d.dropped for d in draws]).float()
    genre = torch.stack([d.attributes["genre"] for d in draws]).float()
    description = torch.stack([d.attributes["description"] for d in draws]).float()
    assert dropped.mean().item() == pytest.approx(0.1, abs=0.02)
    assert genre.mean().item() == pytest.approx(0.5, abs=0.02)
    assert description.mean().item() == pytest.approx(0.2, abs=0.02)
    assert 0.0 < dropped.mean(dim=1).std().item()  # per sample: batches are not all-or-nothing
    same = drop.draw(16, torch.Generator().manual_seed(1))  # deterministic given the generator
    assert torch.equal(same.attributes["genre"], draws[0].attributes["genre"])


def test_ranks_draw_slices_of_one_global_draw() -> None:
    drop = ConditionDropout(cfg=0.5, per_sample=True, attributes={"genre": 0.5})
    whole = drop.draw(8, torch.Generator().manual_seed(3))
    halves = [drop.draw(4, torch.Generator().manual_seed(3), world_size=2, rank=r) for r in (0, 1)]
    assert torch.equal(torch.cat([h.dropped for h in halves]), whole.dropped)
    assert torch.equal(torch.cat([h.attributes["genre"] for h in halves]), whole.attributes["genre"])


def test_dropout_apply_and_errors() -> None:
    draw = DropoutDraw(torch.tensor([True, False, False]), {"genre": torch.tensor([False, True, False])})
    attrs = [{"description": "a", "genre": "jazz"}, {"description": "b", "genre": "rock"}, {"description": "c"}]
    out = draw.apply(attrs)
    assert out == [{"description": None, "genre": None}, {"description": "b", "genre": None},
                   {"description": "c"}]
    assert attrs[0]["description"] == "a"  # not modified in place
    with pytest.raises(ValueError, match=r"dropout probability of attribute 'genre' must be a number in \[0, 1\]"):
        ConditionDropout(attributes={"genre": 1.5})
    with pytest.raises(ValueError, match=r"unknown attribute\(s\) \['mood'\]"):
        ConditionDropout(attributes={"mood": 0.5}).check_attributes(["description", "genre"])
