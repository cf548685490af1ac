"""Write an evaluation report: ``report.json``, and ``report.html`` with a spectrogram next to each caption,
the checks it passed or missed, and bars per attribute (score, chance, ceiling)."""

from __future__ import annotations

import html
import json
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tokenlm.eval.png import spectrogram_image, write_png

MAX_PICTURES = 64


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """Replace NaN / infinity (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _atomic_write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def _bar(value: float | None, colour: str) -> str:
    width = 0.0 if value is None else max(0.0, min(1.0, value)) * 100
    return f'<div class="bar"><div style="width:{width:.1f}%;background:{colour}"></div></div>'


def _attribute_rows(alignment: dict[str, Any]) -> str:
    rows = []
    for name, values in alignment.items():
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{values['n']}</td>"
            f"<td>{_bar(values['score'], '#3b7dd8')}{_number(values['score'])}</td>"
            f"<td>{_bar(values.get('chance'), '#aaaaaa')}{_number(values.get('chance'))}</td>"
            f"<td>{_bar(values.get('ceiling'), '#44aa66')}{_number(values.get('ceiling'))}</td>"
            f"<td>{_number(values.get('calibrated'))}</td></tr>"
        )
    return "\n".join(rows)


def _clip_rows(clips: Sequence[dict[str, Any]], pictures: dict[int, str]) -> str:
    rows = []
    for clip in clips:
        picture = pictures.get(clip["index"])
        image = f'<img src="{picture}" alt="spectrogram">' if picture else ""
        checks = "".join(
            f'<li class="{"ok" if c["matched"] else "miss"}">{"✓" if c["matched"] else "✗"} '
            f"{html.escape(c['attribute'])}: expected {html.escape(str(c['expected']))}, "
            f"detected {html.escape(str(c['detected']))}</li>"
            for c in clip["checks"]
        ) or '<li class="miss">no checkable attribute in this caption</li>'
        problems = "".join(f'<li class="miss">unusable: {html.escape(p)}</li>' for p in clip["problems"])
        rows.append(f"<tr><td>{clip['index']}</td><td>{image}</td><td><b>{html.escape(clip['caption'])}</b>"
                    f"<ul>{problems}{checks}</ul></td></tr>")
    return "\n".join(rows)


def render_html(report: dict[str, Any], pictures: dict[int, str]) -> str:
    """The HTML page of a report; ``pictures`` maps clip index -> spectrogram path relative to the page."""
    summary = report["summary"]
    metrics = {**report.get("quality", {}), **report.get("metrics", {})}
    metric_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_number(v, 4)}</td></tr>" for k, v in metrics.items())
    summary_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_number(v)}</td></tr>" for k, v in summary.items())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tokenlm evaluation</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }}
.bar {{ width: 160px; height: 10px; background: #eee; display: inline-block; margin-right: 6px; }}
.bar div {{ height: 10px; }}
li.ok {{ color: #22863a; }} li.miss {{ color: #cb2431; }} ul {{ margin: 4px 0; padding-left: 1.2em; }}
img {{ width: 320px; height: 128px; image-rendering: pixelated; }}
</style></head><body>
<h1>tokenlm evaluation</h1>
<h2>Summary</h2><table>{summary_rows}</table>
<h2>Alignment per attribute</h2>
<p>Fraction of caption attributes found in the audio; chance = shuffled captions; ceiling = the detectors on the
reference clips; calibrated = (score − chance) / (ceiling − chance).</p>
<table><tr><th>attribute</th><th>n</th><th>score</th><th>chance</th><th>ceiling</th><th>calibrated</th></tr>
{_attribute_rows(report["alignment"])}</table>
<h2>Quality and standard metrics</h2><table>{metric_rows}</table>
<h2>Clips</h2>
<table><tr><th>#</th><th>log-mel spectrogram</th><th>caption and checks</th></tr>
{_clip_rows(report["clips"], pictures)}</table>
</body></html>
"""


def write_report(report: dict[str, Any], out_dir: str | Path,
                 audio: Sequence[tuple[np.ndarray, int]] | None = None) -> dict[str, Path]:
    """Write ``report.json`` and ``report.html`` (with spectrograms of up to 64 clips under ``spectrograms/``)
    into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures: dict[int, str] = {}
    for index, (wav, rate) in enumerate((audio or [])[:MAX_PICTURES]):
        if np.size(wav) == 0:
            continue
        name = f"spectrograms/clip_{index:04d}.png"
        write_png(out_dir / name, spectrogram_image(wav, rate))
        pictures[index] = name
    clean = _clean(json.loads(json.dumps(report, default=_json_default)))
    paths = {"json": _atomic_write(out_dir / "report.json", json.dumps(clean, indent=2, allow_nan=False) + "\n")}
    paths["html"] = _atomic_write(out_dir / "report.html", render_html(clean, pictures))
    return paths
