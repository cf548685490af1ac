"""Progress that reads well on a terminal and in a log file.

On a terminal (or in a notebook) :func:`progress_bar` is an ordinary tqdm bar, redrawn in place. When the stream is
not a terminal (``tokenlm train ... 2> train.log``, a CI runner, a pipe) redrawing in place floods the file with
carriage returns (about 100 KB for a 300-step run), so progress becomes one plain line every ``interval`` seconds,
plus one at the start and one at the end::

    training: 120/300 steps (40%), 00:57 elapsed, 01:25 left, 2.10 steps/s, loss=3.210

The interval is ``TOKENLM_PROGRESS_INTERVAL`` seconds (default 30). Only what is printed changes: the counts, the
postfix and ``metrics.jsonl`` / TensorBoard logging are the same either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm
from tqdm.auto import tqdm as interactive_tqdm

#: seconds between two progress lines when the stream is not a terminal (``TOKENLM_PROGRESS_INTERVAL`` overrides)
DEFAULT_INTERVAL_S = 30.0
INTERVAL_ENV = "TOKENLM_PROGRESS_INTERVAL"

#: one log line, with and without a known total
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, " \
              "{rate_fmt}{postfix}"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {elapsed} elapsed, {rate_fmt}{postfix}"


def progress_interval() -> float:
    """Seconds between progress lines off a terminal: ``TOKENLM_PROGRESS_INTERVAL``, else 30.

    Raises:
        ValueError: the variable is set to something that is not a number of seconds >= 0.
    """
    text = os.environ.get(INTERVAL_ENV)
    if text is None or not text.strip():
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{INTERVAL_ENV} must be a number of seconds >= 0, got {text!r}")
    return value


def is_interactive(stream: IO[str]) -> bool:
    """Whether ``stream`` is shown live (a terminal, or the stderr of a Jupyter kernel), so a bar can redraw."""
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return True
    return stream in (sys.stderr, sys.stdout) and _in_jupyter_kernel()


def _in_jupyter_kernel() -> bool:
    """True inside a running Jupyter kernel (not merely in a process that imported ipykernel, as a notebook runner
    or a test of one does)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython() if hasattr(sys.modules["IPython"], "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class _LineStream:
    """What tqdm writes, one status per line: the carriage returns and padding of in-place redraws dropped."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()


class LogLineBar(tqdm):
    """A tqdm that prints a plain status line at most every ``mininterval`` seconds (see :func:`progress_bar`)."""

    @staticmethod
    def format_meter(n: float, total: float | None, elapsed: float, **kwargs: Any) -> str:  # type: ignore[override]
        known = bool(total) and n < total + 0.5  # tqdm drops a total that the count has passed
        kwargs["bar_format"] = LINE_FORMAT if known else LINE_FORMAT_NO_TOTAL
        return tqdm.format_meter(n, total if known else None, elapsed, **kwargs)

    def close(self) -> None:
        """Print the final line, unless the last line printed already shows the final count."""
        if not self.disable and self.last_print_n == self.n:
            self.leave = False
        super().close()

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """As tqdm's, but never prints by itself: the next line due shows the new postfix."""
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """As tqdm's, but never prints by itself."""
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """As tqdm's, but never prints by itself."""
        super().set_description(desc, refresh=False)


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool = False,
    initial: float = 0,
    file: IO[str] | None = None,
    interval: float | None = None,
) -> tqdm:
    """A tqdm bar on a terminal; plain lines every ``interval`` seconds (default :func:`progress_interval`) when
    ``file`` (default stderr) is not one. Use it as tqdm: ``update(n)``, ``set_postfix(...)``, ``close()``, or
    iterate over it.

    Example::

        with progress_bar(total=300, desc="training", unit="steps") as bar:
            for step in range(300):
                bar.update(1)
    """
    stream = sys.stderr if file is None else file
    if disable or is_interactive(stream):
        return interactive_tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, initial=initial,
                                file=file)
    seconds = progress_interval() if interval is None else float(interval)
    if not seconds >= 0:
        raise ValueError(f"progress interval must be >= 0 seconds, got {interval!r}")
    # miniters=1: tqdm's own monitor thread only forces redraws of bars with dynamic miniters, so the interval holds
    return LogLineBar(iterable, total=total, desc=desc or "progress", unit=unit, initial=initial,
                      file=_LineStream(stream), mininterval=seconds, maxinterval=max(seconds, 10.0), miniters=1,
                      dynamic_ncols=False, ncols=None, ascii=True)
