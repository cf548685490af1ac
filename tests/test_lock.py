"""requirements/lock.txt: the exact versions CI installs. It agrees with pyproject.toml's ranges, pins the CPU build of
torch (never CUDA packages), and an environment made from it by scripts/setup.sh still holds those versions."""

import hashlib
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
#: written by scripts/setup.sh into the environment it installed from the lock
MARKER = Path(sys.prefix) / "tokenlm-lock.json"


def locked() -> dict[str, Version]:
    """``{canonical name: pinned version}`` of the lock."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def declared() -> list[Requirement]:
    """pyproject.toml's dependencies and the extras the lock is compiled with (dev, train)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(text) for text in (*project["dependencies"], *extras["dev"], *extras["train"])]


def test_the_lock_satisfies_every_range_of_pyproject():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is declared in pyproject.toml but not locked: run `bash scripts/lock.sh`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `bash scripts/lock.sh`")


def test_the_lock_pins_the_cpu_torch_and_no_cuda_packages():
    pins = locked()
    assert pins["torch"] == Version("2.13.0+cpu")
    cuda = sorted(name for name in pins if name.startswith("nvidia-") or name == "triton")
    assert not cuda, f"the lock holds CUDA packages {cuda}"


def test_the_environment_holds_the_locked_versions():
    """In an environment scripts/setup.sh installed from the lock, every locked package is at its locked version
    (a torch of your own, TOKENLM_TORCH, excepted)."""
    if not MARKER.is_file():
        pytest.skip(f"not an environment installed from the lock by scripts/setup.sh (no {MARKER})")
    marker = json.loads(MARKER.read_text())
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert marker["lock_sha256"] == digest, "requirements/lock.txt changed since this environment was installed: " \
                                            "run `bash scripts/setup.sh`"
    drift = {}
    for name, version in locked().items():
        if name == "torch" and marker.get("torch_override"):
            continue
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            drift[name] = f"missing (locked {version})"
            continue
        if installed != version:
            drift[name] = f"{installed} (locked {version})"
    assert not drift, f"installed versions differ from requirements/lock.txt: {drift}; run `bash scripts/setup.sh`"
