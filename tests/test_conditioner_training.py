"""An LM trains a few steps from a recipe and generates with (a) MiniLM text + timing + genre and
(b) CLAP: audio embeddings of the training clips at training time, text embeddings at sampling time."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from conditioners.base import AudioValue
from tokenlm import TextToAudio
from tokenlm.train.main import compose_recipe, run

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from conftest import metrics, tiny_recipe_overrides
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.conftest import metrics, tiny_recipe_overrides

GENRES = ["jazz", "rock", "ambient"]
overrides = functools.partial(tiny_recipe_overrides, warmup_steps=1, settings=("checkpoint.every=0",))


def metadata_manifest(folder: Path, source: Path) -> Path:
    """``source``'s clips with genre and timing metadata (absolute paths), as train.jsonl / valid.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "valid.jsonl"):
        lines = [json.loads(line) for line in (source / name).read_text().splitlines() if line]
        for i, line in enumerate(lines):
            line.update(path=str(source / line["path"]), genre=GENRES[i % 3], seconds_start=0,
                        seconds_total=line["duration"])
        (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_minilm_timing_genre_lm_trains_and_generates(tmp_path: Path, tiny_manifest: Path) -> None:
    data = metadata_manifest(tmp_path / "data", tiny_manifest)
    cache = tmp_path / "embedding_cache"
    out = run(["conditioner=timing_genre", f"+conditioners.0.params.cache_dir={cache}",
               *overrides(tmp_path / "run", data, 3, "solver.cfg_dropout=0.3")])
    captions = {json.loads(line)["description"] for line in (data / "train.jsonl").read_text().splitlines()}
    assert 0 < len(list(cache.rglob("*.safetensors"))) <= len(captions)  # one entry per caption seen
    assert str(cache) not in (out / "config.json").read_text()  # a runtime option, not saved
    logged = [m for m in metrics(tmp_path / "run") if "loss" in m]
    assert len(logged) == 3 and all(torch.isfinite(torch.tensor(m["loss"])) for m in logged)
    assert sum(m["drop_genre"] for m in logged) > 0 and all("drop_description" in m for m in logged)
    model = TextToAudio.from_pretrained(out)
    assert model.attributes == ["description", "seconds_start", "seconds_total", "genre"]
    genre = model.backend.conditioning.conditioners["genre"]
    assert genre.values == sorted(GENRES)  # categories taken from the training data
    prompts = [{"description": "a steady tone at 300 hz", "seconds_start": 0, "seconds_total": 2.5, "genre": "jazz"},
               {"description": "white noise hiss", "genre": "polka"}]  # unknown genre, no timing: still fine
    audio = model.generate(prompts, 0.3, seed=0)
    assert audio.wav.shape == (2, 1, 4800) and torch.isfinite(audio.wav).all()
    with pytest.raises(ValueError, match=r"'seconds_total' got 600 s, outside the configured range \[0, 512\] s"):
        model.generate([{"description": "a tone", "seconds_total": 600}], 0.2)
    with pytest.raises(ValueError, match=r"'genre' takes str or list or tuple values .* got int 7"):
        model.generate([{"description": "a tone", "genre": 7}], 0.2)


def test_clap_trains_on_audio_and_samples_from_text(tmp_path: Path, tiny_manifest: Path, tiny_clap_dir: Path) -> None:
    from tokenlm.lm.backend import LMBackend
    from tokenlm.train.data import TrainData
    from tokenlm.train.distributed import DistInfo

    args = ["conditioner=clap_audio", f"conditioners.0.params.model_path={tiny_clap_dir}",
            *overrides(tmp_path / "run", tiny_manifest, 2, "valid.every=2", "valid.batches=1")]
    out = run(args)
    assert [m["valid_ce"] for m in metrics(tmp_path / "run") if "valid_ce" in m]
    # what the trainer feeds the CLAP conditioner: each sample's clip, not its caption
    backend = LMBackend.from_pretrained(tmp_path / "run" / "init")
    data = TrainData(compose_recipe(args), backend, DistInfo(), seed=0)
    batch = data.train_batch(0)
    clip = batch["attributes"][0]["description"]
    assert isinstance(clip, AudioValue) and clip.sample_rate == 16000 and clip.wav.shape == (1, 16000)
    assert torch.equal(clip.wav, batch["wav"][0])
    clap = backend.conditioning.conditioners["description"]
    caption = data.train[int(batch["index"][0])]["attributes"]["description"]
    assert not torch.allclose(clap.encode([clip]).embeds, clap.encode([caption]).embeds)
    # sampling conditions on the CLAP text embedding of the prompt
    model = TextToAudio.from_pretrained(out)
    assert model.backend.conditioning.conditioners["description"].train_on == "audio"
    assert model.generate(["a steady tone at 300 hz", "loud white noise hiss"], 0.3, seed=0).wav.shape == (2, 1, 4800)


def test_recipe_errors_name_the_problem(tmp_path: Path, tiny_manifest: Path) -> None:
    base = overrides(tmp_path / "run", tiny_manifest, 1)
    known = "chroma, clap, hashed_lut, lut, minilm"
    with pytest.raises(ValueError, match=rf"unknown conditioner kind 'clapp'; known kinds: {known}"):
        run([*base, "conditioner=minilm", "conditioners.0.kind=clapp"])
    with pytest.raises(ValueError, match="unknown fuse route 'concat'"):
        run([*base, "conditioner=minilm", "conditioners.0.fuse=concat", f"run_dir={tmp_path / 'r2'}"])
    with pytest.raises(FileNotFoundError, match="no_such_clap"):
        run([*base, "conditioner=clap_audio", f"conditioners.0.params.model_path={tmp_path / 'no_such_clap'}",
             f"run_dir={tmp_path / 'r3'}"])
    with pytest.raises(ValueError, match=r"allowed keys: kind, attribute, params, fuse, dropout"):
        run([*base, "conditioner=minilm", "+conditioners.0.drop=0.5", f"run_dir={tmp_path / 'r4'}"])


def test_readme_conditioners_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from conditioners.registry import GROUP
    from tokenlm.audio import read_audio

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Conditioners\n", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]  # the first: the conditioners tour
    (toml,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert f'[project.entry-points."{GROUP}"]' in toml
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md Conditioners example", "exec"), {})
    wav, rate = read_audio(tmp_path / "lofi.wav")
    assert rate == 16000 and wav.shape == (1, 16000)
    entries = json.loads((tmp_path / "lofi_model" / "config.json").read_text())["conditioners"]
    assert [(e["kind"], e["attribute"], e["fuse"]) for e in entries] == [
        ("minilm", "description", "cross"), ("timing", "seconds_total", "prepend"), ("lut", "genre", "sum")]
    reloaded = TextToAudio.from_pretrained(tmp_path / "lofi_model")
    prompt = {"description": "warm lofi keys with vinyl crackle", "seconds_total": 8, "genre": "jazz"}
    assert reloaded.generate([prompt], duration=0.5, seed=0).wav.shape == (1, 1, 8000)


def test_attribute_dropout_resumes_exactly(tmp_path: Path, tiny_manifest: Path) -> None:
    data = metadata_manifest(tmp_path / "data", tiny_manifest)
    common = ["conditioner=timing_genre", "solver.cfg_dropout=0.3", "solver.per_sample_cfg=true",
              "solver.warmup_steps=4", "conditioners.0.dropout=0.5"]

    def train(name: str, steps: int, *extra: str) -> dict[int, dict]:
        # warm-up spans the whole run, so the 2-step and 4-step runs share their learning rates
        args = [a for a in overrides(tmp_path / name, data, steps, *common) if a != "solver.warmup_steps=1"]
        run([*args, *extra])
        return {m["step"]: m for m in metrics(tmp_path / name) if "loss" in m}

    straight = train("straight", 4)
    train("cut", 2)
    resumed = train("cut", 4, "resume=true")
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in range(1, 5):
        for key in ("loss", "cfg", "drop_genre", "drop_description"):
            assert resumed[step][key] == pytest.approx(straight[step][key], abs=1e-6), (step, key)
    assert 0 < sum(m["drop_description"] for m in straight.values()) < 4


def test_clap_trains_on_audio_from_a_token_cache(tmp_path: Path, tiny_manifest: Path, tiny_clap_dir: Path) -> None:
    """A token cache holds codes, not audio: each segment's clip is read from its source file for CLAP."""
    from tokenlm.data.dataset import read_segment
    from tokenlm.lm.backend import LMBackend
    from tokenlm.train.data import TrainData
    from tokenlm.train.distributed import DistInfo

    args = ["conditioner=clap_audio", f"conditioners.0.params.model_path={tiny_clap_dir}",
            *overrides(tmp_path / "run", tiny_manifest, 2, f"data.cache={tmp_path / 'cache'}")]
    out = run(args)
    assert len([m for m in metrics(tmp_path / "run") if "loss" in m]) == 2
    backend = LMBackend.from_pretrained(tmp_path / "run" / "init")
    data = TrainData(compose_recipe(args), backend, DistInfo(), seed=0)
    batch = data.train_batch(0)
    assert "codes" in batch and "wav" not in batch
    for (path, start, duration), item in zip(batch["source"], batch["attributes"], strict=True):
        clip = item["description"]
        assert isinstance(clip, AudioValue) and clip.sample_rate == 16000
        assert abs(duration - 1.0) < 1e-6 and 0.0 <= start <= 1.5 and Path(path).is_file()
        wav, rate = read_segment(path, start, duration)
        assert rate == 16000 and torch.equal(clip.wav, wav) and wav.shape == (1, 16000)
    # the source names the segment the cached codes came from: the codes of the whole clip at that offset
    (path, start, duration), codes = batch["source"][0], batch["codes"][0]
    offset = round(start * backend.frame_rate)
    assert abs(offset - start * backend.frame_rate) < 1e-6
    encoded = backend.codec.encode(read_segment(path, 0.0, 10.0)[0][None])[0]  # [K, T_clip]
    assert torch.equal(encoded[:, offset: offset + codes.shape[-1]], codes)
    assert TextToAudio.from_pretrained(out).generate(["a tone"], 0.2, seed=0).wav.shape == (1, 1, 3200)
