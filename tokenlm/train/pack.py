"""``pack_model``: turn a trained model's exported checkpoint folder into a shipped asset under ``tokenlm/assets/``.

It loads backends through the registry, so it sits with the training tools above them; where the shipped assets
are and how recipes name them stays in :mod:`tokenlm.common.assets`, which any layer may read.

Example::

    pack_model("runs/demo_lm/export", "lm_sfx16k")   # what `tokenlm assets pack` does
"""

from __future__ import annotations

from pathlib import Path

from tokenlm.common.assets import ASSETS_DIR


def pack_model(
    export_dir: str | Path,
    name: str,
    *,
    codec_asset: str = "codec_sfx16k",
    assets_dir: str | Path | None = None,
    half: bool = True,
) -> Path:
    """Turn a trained model's exported checkpoint folder into a shipped asset ``assets_dir/name`` (default
    ``tokenlm/assets/``), small enough to ship:

    - the codec is not copied: the config points at the shipped codec ``codec_asset`` (refused unless the
      export's codec has exactly its weights);
    - frozen text encoders that an installed package provides (MiniLM) are referenced, not copied: their tensors
      are dropped (refused unless they equal the package's weights);
    - floating tensors are stored as float16 when ``half`` (loading casts them back to float32).

    The folder is written under a temporary name and renamed, then loaded back and checked to condition like the
    export (its LM / DiT weights are the export's up to float16 rounding; the tests compare logits).

    Only the MiniLM conditioner is referenced so far: it is the one frozen encoder an installed package provides.

    Raises:
        ValueError: the export's codec or frozen encoder is not the shipped / packaged one.
    """
    import json
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from tokenlm.backends import get_backend_class
    from tokenlm.codecs import load_codec
    from tokenlm.common.backend import PACKAGED_ENCODER
    from tokenlm.common.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config
    from tokenlm.data.token_cache import codec_fingerprint

    export_dir = Path(export_dir)
    root = Path(assets_dir) if assets_dir is not None else ASSETS_DIR
    config = read_config(export_dir)
    backend = get_backend_class(str(config.get("backend", "lm"))).from_pretrained(export_dir)
    codec_dir = root / codec_asset
    shipped_codec = load_codec(codec_dir, config["codec"])
    if codec_fingerprint(shipped_codec) != codec_fingerprint(backend.codec):
        raise ValueError(f"{str(export_dir)!r} was not trained on the shipped codec {str(codec_dir)!r} (other weights)")

    weights = load_file(str(export_dir / WEIGHTS_NAME))
    drop: list[str] = []
    for entry in config.get("conditioners", []):
        conditioner = backend.conditioning.conditioners[entry["attribute"]]
        if entry["kind"] != "minilm" or entry["config"].get("encoder_path") or getattr(conditioner, "finetune", False):
            continue
        packaged = type(conditioner)(entry["attribute"], None).encoder_module.state_dict()
        prefix = backend.external_weights({"conditioners": [{**entry, "encoder": PACKAGED_ENCODER}]})[0]
        for key, value in packaged.items():
            if not torch.equal(weights[prefix + key], value):
                raise ValueError(f"{prefix + key} differs from the packaged encoder's: the encoder was not frozen")
        drop.append(prefix)
        entry["encoder"] = PACKAGED_ENCODER
        entry.pop("assets", None)
    kept = {
        key: (value.half() if half and value.is_floating_point() else value).contiguous()
        for key, value in weights.items() if not key.startswith(tuple(drop))
    }
    config["codec"] = {**config["codec"], "path": f"../{codec_asset}"}

    def write(staging: Path) -> None:
        for entry in config.get("conditioners", []):
            if "assets" in entry:
                shutil.copytree(export_dir / entry["assets"], staging / entry["assets"])
        save_file(kept, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    target = _publish(root, name, write)
    _check_packed(backend, target)
    return target


def _publish(root: Path, name: str, write) -> Path:
    """Run ``write(staging)`` on a fresh temporary folder under ``root``, make it readable by everyone (package
    data; ``mkdtemp`` makes it private and transformers writes weights 0600), then put it in place of
    ``root / name``; on any error the staging folder is removed and an existing asset is left untouched."""
    import shutil
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        write(staging)
        for path in (staging, *staging.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_packed(original, folder: Path) -> None:
    """The packed folder loads and conditions like the original (float16 rounding aside)."""
    import torch

    from tokenlm.backends import get_backend_class

    packed = get_backend_class(original.name).from_pretrained(folder)
    attributes = [{name: "a sine tone at 440 Hz" for name in original.attributes}]
    with torch.no_grad():
        a = original.conditioning.encode(attributes).as_sequence().embeds
        b = packed.conditioning.encode(attributes).as_sequence().embeds
    if not torch.allclose(a, b, atol=1e-2 * float(a.abs().max()) + 1e-6):
        raise ValueError(f"the packed model in {str(folder)!r} conditions differently from the export")


def pack_clap(export_dir: str | Path, name: str, *, assets_dir: str | Path | None = None, half: bool = True) -> Path:
    """Ship a trained CLAP (a ``ClapModel`` + ``ClapProcessor`` folder, e.g. ``runs/demo_clap/export``) as
    ``assets_dir/name``, its weights in float16 when ``half`` (every tokenlm loader reads CLAP weights as float32).

    The folder is written under a temporary name and renamed, then loaded back and checked: its text and audio
    embeddings of a probe must match the export's (cosine > 0.999).
    """
    import torch
    from transformers import ClapModel, ClapProcessor

    export_dir = Path(export_dir)
    root = Path(assets_dir) if assets_dir is not None else ASSETS_DIR
    model = ClapModel.from_pretrained(export_dir, local_files_only=True, dtype=torch.float32).eval()
    processor = ClapProcessor.from_pretrained(export_dir, local_files_only=True)

    def write(staging: Path) -> None:
        (model.half() if half else model).save_pretrained(staging)
        processor.save_pretrained(staging)

    target = _publish(root, name, write)
    _check_clap(export_dir, target, processor)
    return target


def _check_clap(original: Path, packed: Path, processor) -> None:
    """The packed CLAP embeds a probe tone and caption like the export (cosine > 0.999)."""
    import torch
    from transformers import ClapModel

    rate = int(processor.feature_extractor.sampling_rate)
    time = torch.arange(rate) / rate
    features = processor.feature_extractor([(0.3 * torch.sin(2 * torch.pi * 440 * time)).numpy()],
                                           sampling_rate=rate, return_tensors="pt")
    tokens = processor.tokenizer(["a steady tone at 440 hz"], return_tensors="pt")
    embeddings = []
    for folder in (original, packed):
        model = ClapModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
        with torch.no_grad():
            audio = model.get_audio_features(input_features=features["input_features"])
            text = model.get_text_features(**tokens)
        embeddings.append([getattr(x, "pooler_output", x) for x in (audio, text)])
    for a, b in zip(*embeddings, strict=True):
        cosine = float(torch.nn.functional.cosine_similarity(a, b).min())
        if cosine <= 0.999:
            raise ValueError(f"the packed CLAP in {str(packed)!r} embeds unlike its export (cosine {cosine:.4f})")
