"""Third-party conditioner plugins found through real entry-point discovery (``importlib.metadata``).

The plugin package in ``tests/fixtures/plugin_pkg`` is exposed the way ``pip install`` exposes it: its
source plus a ``.dist-info`` folder (METADATA, entry_points.txt written from its pyproject.toml) on a
``sys.path`` entry. Nothing in the registry is patched.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conditioners import available_conditioners, build_conditioner, get_conditioner_class

PLUGIN = Path(__file__).parent / "fixtures" / "plugin_pkg"
GROUP = "tokenlm.conditioners"


def _read_pyproject(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(path.read_text())


def _unload(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[str]:
    """Install the fixture package into a temporary site dir (source + .dist-info) and put it on sys.path."""
    project = _read_pyproject(PLUGIN / "pyproject.toml")["project"]
    site = tmp_path / "site"
    shutil.copytree(PLUGIN / "tokenlm_demo_plugin", site / "tokenlm_demo_plugin")
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"[{GROUP}]"] + [f"{name} = {value}" for name, value in project["entry-points"][GROUP].items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield "demo_chars"
    finally:
        sys.path.remove(str(site))
        _unload("tokenlm_demo_plugin")
        importlib.invalidate_caches()


def test_plugin_is_discovered_only_while_installed(installed_plugin: str) -> None:
    assert installed_plugin in available_conditioners()
    assert {"t5", "minilm", "clap", "timing", "lut", "number"} <= set(available_conditioners())
    cls = get_conditioner_class(installed_plugin)
    assert cls.__module__ == "tokenlm_demo_plugin" and cls.kind == installed_plugin


def test_plugin_is_gone_after_uninstall() -> None:
    assert "demo_chars" not in available_conditioners()
    with pytest.raises(ValueError, match=r"unknown conditioner kind 'demo_chars'; known kinds: .*minilm.*t5"):
        get_conditioner_class("demo_chars")


def test_plugin_that_raises_on_import_names_itself(installed_plugin: str) -> None:
    with pytest.raises(ImportError, match=r"plugin 'demo_broken' .*tokenlm_demo_plugin.broken.*frobnicate") as info:
        get_conditioner_class("demo_broken")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugin_conditioner_trains_saves_and_loads_in_a_checkpoint(
    installed_plugin: str, spm_model_path: Path, tmp_path: Path
) -> None:
    from conftest import make_tiny_backend

    from tokenlm import TextToAudio
    from tokenlm.lm.backend import LMBackend
    from tokenlm.lm.objective import LMObjective, lm_loss

    base = make_tiny_backend(spm_model_path)
    plugin = build_conditioner(installed_plugin, {"attribute": "mood", "output_dim": 32, "max_length": 16})
    backend = LMBackend(base.lm, base.codec, [base.conditioning.conditioners["description"], plugin],
                        routes={"mood": "prepend"}, max_duration=1.0)
    codes = torch.randint(0, 128, (2, 4, 6))
    attrs = [{"description": "a dog barks", "mood": "calm"}, {"description": "rain", "mood": "angry"}]
    loss = lm_loss(backend.train(), codes, torch.ones(2, 6, dtype=torch.bool), attrs, torch.zeros(2, dtype=torch.bool),
                   LMObjective(rr_mode="off"))["loss"]
    loss.backward()
    assert plugin.embedding.weight.grad.abs().sum() > 0  # the plugin's tokens reach the LM (prepended)
    folder = backend.eval().save_pretrained(tmp_path / "ckpt")
    model = TextToAudio.from_pretrained(folder, dtype="float32")  # exact: the backend it was saved from is float32
    loaded = model.backend.conditioning
    assert loaded.routes == {"description": "cross", "mood": "prepend"}
    assert type(loaded.conditioners["mood"]).__module__ == "tokenlm_demo_plugin"
    assert torch.equal(loaded.conditioners["mood"].embedding.weight, plugin.embedding.weight)
    prompts = [{"description": "a dog barks", "mood": "calm"}]
    expected = backend.generate_tokens(prompts, 0.3, model_params(backend), seed=0)
    assert torch.equal(model.backend.generate_tokens(prompts, 0.3, model_params(backend), seed=0), expected)


def model_params(backend):
    from tokenlm.lm.sampling import SamplingParams

    return SamplingParams(top_k=10, cfg_coef=2.0)
