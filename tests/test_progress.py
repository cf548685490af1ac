"""Progress off a terminal: plain lines at an interval, never a flood of carriage returns; a bar on a terminal."""

import io

import pytest

from tokenlm.common.progress import INTERVAL_ENV, progress_bar, progress_interval


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run(stream: io.StringIO, steps: int, **options) -> str:
    bar = progress_bar(total=steps, desc="training", unit="steps", file=stream, **options)
    for step in range(steps):
        bar.update(1)
        bar.set_postfix(loss=f"{3.0 - step / steps:.3f}")
    bar.close()
    return stream.getvalue()


def test_a_log_file_gets_a_start_and_an_end_line_not_one_redraw_per_step():
    log = run(io.StringIO(), 300, interval=3600)
    assert "\r" not in log
    lines = log.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("training: 0/300 steps (0%)")
    assert lines[1].startswith("training: 300/300 steps (100%)") and lines[1].endswith("loss=2.003")
    assert len(log) < 300  # tqdm redrawn in place wrote ~100 KB for 300 steps


def test_a_zero_interval_gives_one_line_per_step_and_no_repeat_at_the_end():
    lines = run(io.StringIO(), 5, interval=0).splitlines()
    assert [line.split(" steps")[0] for line in lines] == [f"training: {n}/5" for n in range(6)]


def test_a_terminal_still_gets_the_redrawn_bar():
    screen = run(Terminal(), 20, interval=0)
    assert "\r" in screen and "20/20" in screen


def test_iterating_without_a_total_and_past_the_total():
    stream = io.StringIO()
    assert list(progress_bar(iter(range(3)), desc="indexing", unit="files", file=stream, interval=0)) == [0, 1, 2]
    assert stream.getvalue().splitlines()[-1].startswith("indexing: 3 files,")
    stream = io.StringIO()
    bar = progress_bar(total=2, desc="x", file=stream, interval=0)
    bar.update(3)  # more than announced: the line drops the total rather than claiming 150%
    bar.close()
    assert stream.getvalue().splitlines()[-1].startswith("x: 3 it,")


def test_disabled_prints_nothing():
    stream = io.StringIO()
    bar = progress_bar(total=3, file=stream, disable=True)
    bar.update(3)
    bar.close()
    assert stream.getvalue() == ""


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert progress_interval() == 30.0
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert progress_interval() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match=rf"{INTERVAL_ENV} must be a number of seconds >= 0, got '{bad}'"):
            progress_interval()


def test_a_jupyter_kernel_gets_the_bar_but_a_process_that_only_imported_ipykernel_does_not(monkeypatch):
    import sys
    import types

    from tokenlm.common.progress import is_interactive

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: None  # imported (a notebook runner, its tests), no kernel running
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert not is_interactive(stderr)
    bar = progress_bar(total=3, desc="training", unit="steps", interval=3600)
    bar.update(3)
    bar.close()
    assert "\r" not in stderr.getvalue() and stderr.getvalue().count("\n") == 2

    fake_ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # inside a kernel: live redraws
    assert is_interactive(stderr)
    assert not is_interactive(io.StringIO())  # another stream than the kernel's own is still a plain log
