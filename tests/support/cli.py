"""Runs the `cadenza` command against a test mesh's edge (plaintext in the suite)."""

from __future__ import annotations

import subprocess
import sys

from tools.devmesh import Mesh


def cli(mesh: Mesh, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza.cli.main", *args, "--target",
                           mesh.endpoints.public, "--insecure"],
                          capture_output=True, text=True, timeout=timeout_s)
