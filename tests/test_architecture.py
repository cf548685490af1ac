"""The architecture checks itself: the import contracts hold, the CLI's help imports no torch, low layers do not
pull the user API in, and the package's top level loads it lazily."""

import importlib.metadata
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what ``--help`` must not import: the numerical stack and the models
HEAVY = ("torch", "numpy", "scipy", "transformers", "diffusers", "soundfile", "tokenlm.api", "tokenlm.lm", "hydra")


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (so that nothing this test process imported counts) and return stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_help_screen_imports_no_torch():
    out = run_python(f"""
        import argparse, contextlib, io, json, sys
        from tokenlm.cli import build_parser

        parser = build_parser()
        commands = [[]]
        def walk(p, path):
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        commands.append(path + [name])
                        walk(sub, path + [name])
        walk(parser, [])
        screens = {{}}
        for command in commands:
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
                parser.parse_args(command + ["--help"])
            screens[" ".join(command)] = text.getvalue()
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"screens": screens, "loaded": loaded}}))
    """)
    report = json.loads(out)
    screens = report["screens"]
    assert {"", "generate", "edit", "train", "eval", "convert", "data synth", "codec eval", "assets pack"} <= set(
        screens)
    assert all(screen.startswith("usage: tokenlm") for screen in screens.values()), screens
    assert report["loaded"] == [], f"--help imported {report['loaded']}"


def test_the_console_script_help_runs_without_torch():
    script = Path(sys.executable).with_name("tokenlm")
    if not script.is_file():
        pytest.skip("the tokenlm console script is not installed beside this interpreter")
    out = run_python(f"""
        import runpy, sys
        sys.argv = [{str(script)!r}, "generate", "--help"]
        try:
            runpy.run_path({str(script)!r}, run_name="__main__")
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        print("TORCH" if "torch" in sys.modules else "NO TORCH")
    """)
    assert "--duration" in out and out.strip().endswith("NO TORCH")


def test_the_synth_presets_spelled_out_for_help_are_the_real_ones():
    from tokenlm.data.synth.cli import PRESET_NAMES
    from tokenlm.data.synth.dataset import PRESETS

    assert sorted(PRESET_NAMES) == sorted(PRESETS)


def test_backends_and_checkpoints_do_not_pull_the_user_api_in(tmp_path):
    out = run_python(f"""
        import json, sys
        from pathlib import Path
        import tokenlm.ldm.backend, tokenlm.lm.backend, tokenlm.pipelines.diffusers_backend
        from tokenlm.common.checkpoint import read_config, write_config

        write_config(Path({str(tmp_path)!r}), {{"backend": "lm"}})
        config = read_config({str(tmp_path)!r})
        print(json.dumps({{"api": "tokenlm.api" in sys.modules, "cli": "tokenlm.cli" in sys.modules,
                           "version": config["tokenlm_version"]}}))
    """)
    report = json.loads(out)
    assert report == {"api": False, "cli": False, "version": importlib.metadata.version("tokenlm")}


def test_the_top_level_loads_the_api_on_first_use():
    out = run_python("""
        import sys
        import tokenlm
        before = "torch" in sys.modules
        from tokenlm import TextToAudio
        import tokenlm.api
        print(before, TextToAudio is tokenlm.api.TextToAudio, tokenlm.Audio is tokenlm.api.Audio,
              "TextToAudio" in dir(tokenlm))
    """)
    assert out.split() == ["False", "True", "True", "True"]


def test_lazy_packages_name_what_they_lack():
    import tokenlm
    import tokenlm.data.synth
    import tokenlm.eval

    for module in (tokenlm, tokenlm.eval, tokenlm.data.synth):
        with pytest.raises(AttributeError, match=rf"module '{module.__name__}' has no attribute 'nope'"):
            module.nope  # noqa: B018
    from tokenlm.data.synth import PRESETS
    from tokenlm.eval import run_suite
    from tokenlm.eval.suite import run_suite as direct

    assert run_suite is direct and "sfx16k" in PRESETS
    assert set(tokenlm.eval.__all__) <= set(dir(tokenlm.eval))


def test_the_import_contracts_hold():
    """The rules in pyproject.toml's [tool.importlinter] (CI runs ``lint-imports`` too; this keeps them checked
    wherever the tests run)."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if linter is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([linter, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def test_ci_runs_the_checks_and_every_benchmark_quick_mode():
    """.ci/run lints, checks the import contracts and runs each benchmark's --quick mode (rr_study.py, which trains
    two recipes per seed, is run by hand), so none of them can rot unnoticed."""
    ci = (REPO / ".ci" / "run").read_text()
    for step in (".venv/bin/ruff check .", ".venv/bin/lint-imports", "bash benchmarks/quick.sh"):
        assert step in ci, step
    quick = (REPO / "benchmarks" / "quick.sh").read_text()
    listed = set(quick.split("for bench in ", 1)[1].split(";", 1)[0].split())
    scripts = {path.stem for path in (REPO / "benchmarks").glob("*.py") if "def main(" in path.read_text()}
    assert listed == scripts - {"rr_study"}, (listed, scripts)
    for name in listed:
        assert '"--quick"' in (REPO / "benchmarks" / f"{name}.py").read_text(), f"{name}.py has no --quick mode"


@pytest.mark.slow
def test_editing_benchmark_quick_mode_measures_the_three_edits(tmp_path):
    """benchmarks/editing.py --quick (in quick.sh above) runs style transfer, inpainting and super-resolution on the
    shipped LDM and writes its figures: strength 0 is the codec round trip (white noise stays white), the known
    region of every inpainted clip is the input bit for bit, and the low-passed input has lost its high band."""
    out = tmp_path / "editing.json"
    result = subprocess.run([sys.executable, "benchmarks/editing.py", "--quick", "--threads", "1", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] and report["steps"] == 2 and report["cpu"]
    rows = report["style"]["colour"]["rows"]
    assert [row["strength"] for row in rows] == [0.0, 0.5, 1.0]
    assert rows[0]["source_match"] == 1.0 and rows[0]["target_match"] == 0.0
    for prompt in report["inpaint"]["prompts"].values():
        assert prompt["known_bit_exact"] == 1.0 and prompt["known_max_abs_diff"] == 0.0
        assert prompt["known_bit_exact_after_float_wav"] == 1.0
    rows = {row["name"]: row for row in report["superres"]["rows"]}
    assert rows["original"]["hf_energy_db_median"] == 0.0
    assert rows["low-passed input"]["hf_energy_db_median"] < -20.0
    assert rows["edit, strength 0.6"]["lf_distance_to_input_db"] < 1.0
