"""The notebooks in notebooks/: committed without outputs, and executed end to end (nbclient) on the shipped models.

Each notebook's first code cell is tagged ``parameters`` (papermill's convention); the test runs it as written and
then an injected cell that sets ``QUICK = True`` (fewer prompts, shorter clips, a few training steps: the same code
path) and ``WORK_DIR`` to a temporary folder, as ``papermill -p QUICK True`` would.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("lm_vs_diffusion", "rr_ablation", "train_your_own")
#: each notebook's quick run must finish within this (the issue's budget on this 2-core CPU)
BUDGET_S = 300.0


def read(name: str):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_notebooks_are_the_ones_named():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_have_no_outputs(name):
    """Outputs are stripped in git (``.venv/bin/nbstripout notebooks/*.ipynb`` strips them)."""
    notebook = read(name)
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{name}.ipynb has outputs or execution counts in cells {dirty}: run nbstripout on it"
    assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("name", NAMES)
def test_the_first_code_cell_holds_the_parameters(name):
    notebook = read(name)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert "QUICK = False" in first.source and "WORK_DIR = " in first.source


def execute(name: str, work_dir: Path, timeout_s: float = 600, *, quick: bool = True,
            extra: str = "") -> tuple[object, float]:
    """Run the notebook with ``QUICK = True`` (or False) and ``WORK_DIR = work_dir`` (and ``extra`` lines after);
    returns it with its outputs, and seconds."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    pytest.importorskip("ipykernel")
    notebook = read(name)
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = f"# injected parameters\nQUICK = {quick}\nWORK_DIR = {str(work_dir)!r}\n{extra}"
    injected = nbformat.v4.new_code_cell(source)
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, injected)
    client = nbclient.NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - started


def text_of(notebook) -> str:
    """Everything the notebook printed or displayed as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") + data.get("text/plain", ""))
    return "\n".join(parts)


def count(notebook, mime: str) -> int:
    return sum(mime in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


@pytest.mark.slow
def test_lm_vs_diffusion_runs_on_the_shipped_models(tmp_path):
    notebook, seconds = execute("lm_vs_diffusion", tmp_path)
    text = text_of(notebook)
    assert "LM (default, backend lm)" in text and "LDM (default-ldm, backend ldm)" in text
    assert "s per second of audio" in text and "Fréchet distance" in text and "| pitch |" in text
    assert count(notebook, "image/png") >= 3 and count(notebook, "text/html") >= 6  # spectrograms, players
    assert (tmp_path / "synth" / "test_heldout.jsonl").is_file()
    assert seconds < BUDGET_S, f"the quick run took {seconds:.0f} s"


@pytest.mark.slow
def test_rr_ablation_runs_the_quick_study_and_plots_both_models(tmp_path):
    notebook, seconds = execute("rr_ablation", tmp_path)
    text = text_of(notebook)
    study = tmp_path / "rr_study_quick"
    assert (study / "summary.json").is_file()
    assert all((study / f"{arm}_seed{seed}" / "export" / "config.json").is_file()
               for arm in ("rr", "no_rr") for seed in (0, 1))
    assert "| attribute | RR on | RR off | RR − off (mean ± std) | RR better on |" in text
    assert "RR on (demo_lm): L_rr" in text and "RR off (demo_lm_norr): L_rr" in text
    assert count(notebook, "image/png") >= 2  # alignment per attribute, similarity matrices
    assert seconds < BUDGET_S, f"the quick run took {seconds:.0f} s"


def test_rr_ablation_without_a_study_reads_the_committed_summary(tmp_path):
    """A fresh clone has no runs/: the notebook plots the summary committed in docs/results and says what is
    missing, without training anything."""
    notebook, _ = execute("rr_ablation", tmp_path, quick=False, extra=f"STUDY_DIR = {str(tmp_path / 'none')!r}\n")
    text = text_of(notebook)
    assert "reading the committed summary ../docs/results/rr_study_summary.json" in text
    assert "no similarity matrices" in text and count(notebook, "image/png") == 1
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_train_your_own_indexes_trains_and_generates(tmp_path):
    notebook, seconds = execute("train_your_own", tmp_path)
    text = text_of(notebook)
    assert len(list((tmp_path / "my_sounds").glob("*.wav"))) == 24
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 24 and all('"description"' in line for line in lines)
    assert (tmp_path / "run" / "export" / "config.json").is_file()
    assert "trained 4 steps" in text and "tokenlm generate" in text
    assert count(notebook, "image/png") >= 2 and count(notebook, "text/html") >= 4  # loss, spectrograms; players
    assert seconds < BUDGET_S, f"the quick run took {seconds:.0f} s"
