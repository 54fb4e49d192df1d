"""The locks: requirements/lock.txt satisfies pyproject.toml, .venv holds exactly it, and
every image's pins (and .venv-triton's lock) are cut from locks, never from a resolver run."""

from __future__ import annotations

import importlib.metadata as metadata
import pathlib
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.scripts import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements/lock.txt"
TRITON_LOCK = ROOT / "requirements/triton.txt"
TRITON_PYTHON = ROOT / ".venv-triton/bin/python"
pins = load_script(ROOT / "deploy/docker/pins.py", "docker_pins_for_locks")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement_lines(path: pathlib.Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()]


@pytest.mark.parametrize("path", [LOCK, TRITON_LOCK], ids=lambda p: p.name)
def test_every_lock_line_pins_one_exact_version(path):
    for line in _requirement_lines(path):
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"not exact: {line}"
        assert not req.marker and not req.extras, f"markers/extras belong in the input: {line}"


def test_lock_satisfies_every_requirement_and_extra_of_pyproject():
    project = _project()
    locked = pins.read_lock(LOCK)
    lines = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        lines += extra
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is required but not locked: run make lock"
        assert req.specifier.contains(locked[name], prereleases=True), (line, locked[name])


def test_torch_is_the_local_cpu_wheel():
    assert pins.read_lock(LOCK)["torch"] == "2.13.0+cpu"


def test_triton_lock_satisfies_its_input():
    locked = pins.read_lock(TRITON_LOCK)
    for line in _requirement_lines(ROOT / "requirements/triton.in"):
        req = Requirement(line)
        assert req.specifier.contains(locked[canonicalize_name(req.name)], prereleases=True)


def _installed(python: str) -> dict[str, str]:
    """Canonical name -> version of every distribution that interpreter sees, but the
    project itself (an editable install of this checkout)."""
    code = ("import importlib.metadata as m\n"
            "for d in m.distributions(): print(d.metadata['Name'], d.version, sep='==')")
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        name, _, version = line.partition("==")
        found[canonicalize_name(name)] = version
    found.pop("cadenza", None)
    return found


def test_the_venv_holds_exactly_the_lock():
    if pathlib.Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not running in this checkout's .venv (make test does)")
    assert _installed(sys.executable) == pins.read_lock(LOCK)
    assert metadata.distribution("cadenza").version == _project()["version"]


def test_the_triton_venv_holds_its_lock():
    if not TRITON_PYTHON.exists():
        pytest.skip("no .venv-triton: run `make triton-env` (make test does)")
    installed = _installed(str(TRITON_PYTHON))
    locked = pins.read_lock(TRITON_LOCK)
    # venv's own bootstrap (pip, setuptools) may sit beside the lock; nothing else may.
    assert {n: installed.get(n) for n in locked} == locked
    assert set(installed) - set(locked) <= {"pip", "setuptools"}


@pytest.mark.parametrize("service", ["gateway", "retrieval", "recommend", "generate"])
def test_image_pins_are_a_subset_of_the_lock(service):
    locked = pins.read_lock(LOCK)
    image = pins.read_lock(ROOT / f"deploy/docker/requirements/{service}.txt")
    assert image, service
    for name, version in image.items():
        assert locked.get(name) == version, (service, name, version, locked.get(name))
