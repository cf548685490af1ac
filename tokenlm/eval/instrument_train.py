"""Train the instrument-family detector (:mod:`tokenlm.eval.instrument`) on a music set's FluidR3 renders.

Targets per clip: every family that plays (multi-label, binary cross-entropy) with the lead instrument's family
weighted double, and drums on or off. Training windows are random 2 s crops with augmentations that change what
a SoundFont changes and keep what an instrument is: gain, a random smooth equaliser curve and tilt, a little noise,
time and frequency masks.

Example::

    python -m tokenlm.eval.instrument_train --data music/ --out tokenlm/assets/instrument_family --epochs 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import soundfile as sf
import torch

from tokenlm.data.sources.music.instruments import MELODY_FAMILIES
from tokenlm.eval.instrument import FRAMES_PER_WINDOW, InstrumentDetector, InstrumentNet, log_mel_frames

#: control points of the random equaliser curve
EQ_POINTS = 6


def load_split(root: Path, split: str, limit: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Log-mel features of a split's clips and their ``[N, families + 1]`` targets (lead family = 2, other
    families = 1, drums last)."""
    lines = (root / f"{split}.jsonl").read_text().splitlines()[:limit]
    features, targets = [], []
    for line in lines:
        record = json.loads(line)
        labels = record["labels"]
        wav, rate = sf.read(root / record["path"], dtype="float32")
        features.append(log_mel_frames(wav, rate))
        target = torch.zeros(len(MELODY_FAMILIES) + 1)
        for family in labels["instrument_families"]:
            target[MELODY_FAMILIES.index(family)] = 1.0
        target[MELODY_FAMILIES.index(labels["lead_instrument_family"])] = 2.0
        target[-1] = float(labels["drums"])
        targets.append(target)
    return features, torch.stack(targets)


def warp_bands(batch: torch.Tensor, generator: torch.Generator, stretch: float = 0.08,
               shift: float = 2.0) -> torch.Tensor:
    """Moves each example's spectrum along the mel axis: band ``m`` is read from ``(m - c) * s + c + d`` (linear
    interpolation, edges held), with ``s`` drawn in ``1 +- stretch`` and ``d`` in ``+-shift`` bands. Another
    SoundFont's samples of the same instrument were recorded at other pitches and played back shifted, so their
    formants sit a little higher or lower: this teaches the net that they are the same instrument."""
    b, _, n_mels, _ = batch.shape
    centre = (n_mels - 1) / 2.0
    s = 1.0 + (torch.rand(b, generator=generator) * 2.0 - 1.0) * stretch  # [B]
    d = (torch.rand(b, generator=generator) * 2.0 - 1.0) * shift  # [B]
    bands = torch.arange(n_mels, dtype=batch.dtype)
    source = ((bands[None, :] - centre) * s[:, None] + centre + d[:, None]).clamp(0.0, n_mels - 1.0)  # [B, M]
    low = source.floor().long().clamp(max=n_mels - 2)
    frac = (source - low.to(batch.dtype))[:, None, :, None]  # [B, 1, M, 1]
    index = low[:, None, :, None].expand(-1, batch.shape[1], -1, batch.shape[3])  # [B, 1, M, T]
    below = batch.gather(2, index)
    above = batch.gather(2, index + 1)
    return below + frac * (above - below)


def augment(batch: torch.Tensor, generator: torch.Generator, warp: bool = False) -> torch.Tensor:
    """What another SoundFont or room changes, applied to ``[B, 1, n_mels, T]`` features (scaled dB / 20): a random
    smooth equaliser curve (up to +-10 dB at :data:`EQ_POINTS` points across the band, interpolated) and tilt, a
    gain, a little noise, and time / frequency masks; with ``warp``, first :func:`warp_bands`."""
    if warp:
        batch = warp_bands(batch, generator)
    b, _, n_mels, frames = batch.shape
    position = torch.linspace(-1.0, 1.0, n_mels)[None, None, :, None]
    tilt = (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.8  # +-8 dB across the band
    points = (torch.rand(b, 1, EQ_POINTS, generator=generator) - 0.5)  # +-0.5 = +-10 dB
    curve = torch.nn.functional.interpolate(points, size=n_mels, mode="linear", align_corners=True)[:, :, :, None]
    out = batch + tilt * position + curve - torch.rand(b, 1, 1, 1, generator=generator) * 0.5
    out = out + 0.05 * torch.randn(out.shape, generator=generator)
    for i in range(b):
        f0 = int(torch.randint(0, n_mels - 8, (1,), generator=generator))
        out[i, :, f0:f0 + int(torch.randint(0, 8, (1,), generator=generator))] = out[i].min()
        t0 = int(torch.randint(0, frames - 20, (1,), generator=generator))
        out[i, :, :, t0:t0 + int(torch.randint(0, 20, (1,), generator=generator))] = out[i].min()
    return out


def crops(features: list[torch.Tensor], indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random window of :data:`FRAMES_PER_WINDOW` frames from each chosen clip: ``[B, 1, n_mels, frames]``."""
    out = []
    for index in indices.tolist():
        clip = features[index]
        start = int(torch.randint(0, max(1, clip.shape[1] - FRAMES_PER_WINDOW + 1), (1,), generator=generator))
        window = clip[:, start:start + FRAMES_PER_WINDOW]
        if window.shape[1] < FRAMES_PER_WINDOW:
            window = torch.nn.functional.pad(window, (0, FRAMES_PER_WINDOW - window.shape[1]), value=float(clip.min()))
        out.append(window)
    return torch.stack(out)[:, None]


def load_splits(roots: list[Path], split: str, limit: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """:func:`load_split` of several music sets (renders of other SoundFonts, say), concatenated."""
    features: list[torch.Tensor] = []
    targets = []
    for root in roots:
        more, more_targets = load_split(root, split, limit)
        features += more
        targets.append(more_targets)
    return features, torch.cat(targets)


def train(data: Path | list[Path], out: Path, epochs: int = 30, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
          width: int = 16, limit: int | None = None, log: bool = True, centre_bands: bool = False,
          warp: bool = False) -> dict:
    """Train on the train split of ``data`` (one music set or several), report accuracy on their valid splits each
    epoch, save to ``out``."""
    roots = [Path(d) for d in data] if isinstance(data, (list, tuple)) else [Path(data)]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    features, targets = load_splits(roots, "train", limit)
    valid_features, valid_targets = load_splits(roots, "valid", limit)
    net = InstrumentNet(MELODY_FAMILIES, width=width, centre_bands=centre_bands)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    steps_per_epoch = max(1, len(features) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * steps_per_epoch)
    history = []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(features), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            chosen = order[step * batch_size:(step + 1) * batch_size]
            x = augment(crops(features, chosen, generator), generator, warp=warp)
            y = targets[chosen]
            logits = net(x)
            weight = torch.where(y == 2.0, 2.0, 1.0)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, (y > 0).float(), weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        detector = InstrumentDetector(net)
        accuracy = evaluate(detector, valid_features, valid_targets)
        history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, **accuracy})
        if log:
            print(json.dumps(history[-1]), flush=True)
    detector = InstrumentDetector(net.eval())
    detector.save_pretrained(out, {"trained_on": [str(r) for r in roots], "epochs": epochs, "clips": len(features),
                                   "warp": warp, "seconds": round(time.perf_counter() - start, 1),
                                   "final": history[-1]})
    return history[-1]


@torch.no_grad()
def evaluate(detector: InstrumentDetector, features: list[torch.Tensor], targets: torch.Tensor) -> dict:
    """Lead-family top-1 accuracy and drums accuracy on precomputed features."""
    from tokenlm.eval.instrument import windows

    detector.net.eval()
    lead_hits = drum_hits = 0
    for clip, target in zip(features, targets, strict=True):
        logits = detector.net(windows(clip)).mean(0)
        lead_hits += int(int(logits[:-1].argmax()) == int((target[:-1] == 2.0).nonzero()[0]))
        drum_hits += int((float(torch.sigmoid(logits[-1])) >= detector.drums_threshold) == bool(target[-1]))
    n = max(1, len(features))
    return {"lead_top1": lead_hits / n, "drums": drum_hits / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, nargs="+",
                        help="music sets built by `tokenlm data music` (several: their clips together)")
    parser.add_argument("--out", required=True, help="folder to write the detector to")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--centre-bands", action="store_true",
                        help="remove each mel band's mean over a window (invariance to a fixed equaliser)")
    parser.add_argument("--warp", action="store_true",
                        help="also stretch and shift each window's spectrum along the mel axis (formants of samples "
                             "recorded at other pitches)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N clips of each split")
    args = parser.parse_args(argv)
    final = train([Path(d) for d in args.data], Path(args.out), args.epochs, args.batch_size, args.lr, args.seed,
                  args.width, args.limit, centre_bands=args.centre_bands, warp=args.warp)
    print(json.dumps(final))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
