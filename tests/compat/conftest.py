"""Parity tests against the original libraries (audiocraft 1.3.0, encodec 0.1.1), run in ``.venv-compat``.

``bash scripts/setup_compat.sh`` builds that environment; ``.ci/run`` then runs
``TOKENLM_REQUIRE_COMPAT=1 .venv-compat/bin/python -m pytest -q tests/compat``. In the main environment, where the
reference libraries are not installed, the modules here are not collected; with ``TOKENLM_REQUIRE_COMPAT=1`` a
missing reference library is an error instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REFERENCE_LIBRARIES = ("audiocraft", "encodec", "torchaudio")
MISSING = [name for name in REFERENCE_LIBRARIES if importlib.util.find_spec(name) is None]
REQUIRED = os.environ.get("TOKENLM_REQUIRE_COMPAT") == "1"

if MISSING and REQUIRED:
    raise pytest.UsageError(
        f"TOKENLM_REQUIRE_COMPAT=1 but {MISSING} cannot be imported: run the compat tests with "
        ".venv-compat/bin/python (built by scripts/setup_compat.sh)"
    )

#: without the reference libraries the parity modules are not collected at all
collect_ignore_glob = ["test_*.py"] if MISSING else []

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder carries the ``compat`` marker (``-m compat`` / ``-m "not compat"``)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.compat)
