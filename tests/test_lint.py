"""ruff (docstrings included) and mypy --strict find nothing in any package (`make lint`)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-6000:]


def test_mypy_strict_covers_every_package_and_finds_nothing():
    result = _run(str(BIN / "mypy"))  # files and strict = true come from pyproject.toml
    assert result.returncode == 0, result.stdout[-6000:]
    # "Success: no issues found in N source files"
    checked = int(re.search(r"in (\d+) source files", result.stdout).group(1))
    assert checked > 100, result.stdout  # every package, not only the kit
