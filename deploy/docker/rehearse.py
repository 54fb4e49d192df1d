"""Rehearses the four images without a Docker engine, then runs them as a mesh.

`python deploy/docker/rehearse.py [--out DIR]` (needs PyPI; ~5 min and ~1.3 GB the first
time). For each Dockerfile it lays out what the image would hold under DIR/<service>/:
the builder stage's RUN lines run as written with /opt/venv re-rooted (so the venv comes
from the same pinned file, pip flags and `pip check`), and the final stage's COPY lines
copy the build context as .dockerignore leaves it. Then each service starts from its own
folder with the Dockerfile's ENV and CMD (absolute paths re-rooted, loopback, free ports),
as the Dockerfile's USER when run as root, and a few calls go through the gateway.

What it cannot rehearse: the final stage's RUN lines (apt packages come from this host,
the user is not created) and the base image's Python build (this host's 3.11 is used).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import context

sys.path.insert(0, str(context.ROOT))
from tools.devmesh import PROCESSES, Endpoints, wait_serving

CLI = pathlib.Path(sys.executable).parent / "cadenza"
BASE_PYTHON = next((p for p in (pathlib.Path("/usr/bin/python3.11"),) if p.is_file()),
                   pathlib.Path(sys._base_executable))  # type: ignore[attr-defined]


def reroot(value: str, root: pathlib.Path) -> str:
    """An image path (/app/models/text, /opt/venv/bin:...) inside this image's folder."""
    return ":".join(f"{root}{p}" if p.startswith("/") else p for p in value.split(":"))


def build(service: str, root: pathlib.Path) -> None:
    """The builder stage's RUN lines (venv, pinned install, pip check), then the COPYs."""
    stages = context.stages(service)
    builder, image = stages[0], stages[-1]
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    # `python` is a system-wide 3.11 that the Dockerfile's USER can run (a pyenv one under
    # /root is out of its reach).
    shim = root.parent / "bin"
    shim.mkdir(exist_ok=True)
    if not (shim / "python").exists():
        (shim / "python").symlink_to(BASE_PYTHON)
    env = {**os.environ, "PATH": f"{shim}:/usr/bin:/bin"}
    for copy in builder.copies():
        for source in copy.sources:
            target = root / copy.dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context.ROOT / source, target)
    with open(root.parent / f"{service}-build.log", "wb") as log:
        for run in builder.all("RUN"):
            # The builder's absolute paths (/opt/venv, /tmp/requirements.txt), re-rooted.
            command = re.sub(r"(?<![\w/])/(opt|tmp)/", f"{root}/\\1/", run)
            subprocess.run(["sh", "-c", command], env=env, check=True, stdout=log,
                           stderr=subprocess.STDOUT)
    rules = context.project_rules()
    for copy in image.copies():
        if copy.from_stage:
            continue
        for source in copy.sources:
            for name in context.context_files(source, rules):
                target = root / image.image_path(name).lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(context.ROOT / name, target)


def start(service: str, root: pathlib.Path, endpoints: Endpoints,
          log_dir: pathlib.Path) -> subprocess.Popen[bytes]:
    """Starts one image's command from its laid-out file system, as the image's user."""
    image = context.stages(service)[-1]
    _, prefix, _, _ = PROCESSES[service]
    env = {"LANG": "C.UTF-8"}
    env.update({k: reroot(v, root) for k, v in context.parser(service).envs.items()})
    env["PATH"] = f"{root}/opt/venv/bin:/usr/bin:/bin"
    env[f"{prefix}HOST"] = "127.0.0.1"
    env[f"{prefix}PORT"] = str(endpoints.grpc_ports[service])
    env[f"{prefix}METRICS_PORT"] = str(endpoints.metrics_ports[service])
    env.update(endpoints.peer_env())
    user = image.all("USER")[-1]
    uid, _, gid = user.partition(":")
    # Writable as in the image: HOME and the data folder belong to the user, /tmp is 1777.
    for key in ("HOME", f"{prefix}DATA_DIR"):
        if key in env:
            pathlib.Path(env[key]).mkdir(parents=True, exist_ok=True)
            if os.getuid() == 0:
                os.chown(env[key], int(uid), int(gid or uid))
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    command = image.command()
    if os.getuid() == 0:
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups",
                   *command]
    with open(log_dir / f"{service}.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(command, cwd=image.workdir().replace("/", f"{root}/", 1),
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def smoke(gateway: str, out: pathlib.Path) -> bool:
    """A few calls through the gateway that touch every service's artefacts."""
    piece = out / "piece.wav"
    calls = [["health"], ["generate", "-o", str(piece), "--bars", "4", "--seed", "7"],
             ["ingest", str(piece)], ["search", "--text", "piece"],
             ["recommend", "--seed-text", "piece", "rehearsal-user"]]
    ok = True
    for call in calls:
        result = subprocess.run([str(CLI), call[0], "--target", gateway, *call[1:]],
                                capture_output=True, text=True, timeout=600)
        print(f"$ cadenza {' '.join(call)}  -> exit {result.returncode}")
        print((result.stdout + result.stderr).rstrip()[-1200:])
        ok &= result.returncode == 0
    return ok


def main() -> int:
    """Lays out every image, runs them as a mesh, smoke-tests it and stops it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/cadenza-images"))
    parser.add_argument("--skip-build", action="store_true", help="reuse the folders in --out")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    for service in PROCESSES:
        if not args.skip_build:
            started = time.monotonic()
            build(service, out / service)
            print(f"{service}: laid out in {time.monotonic() - started:.0f} s", flush=True)
    endpoints = Endpoints.free()
    procs = {name: start(name, out / name, endpoints, out) for name in PROCESSES}

    def check_alive() -> None:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {out}/{name}.log")

    gateway = endpoints.address("gateway")
    started = time.monotonic()
    try:
        wait_serving(gateway, 300, check_alive)
        print(f"mesh SERVING {time.monotonic() - started:.0f} s after start", flush=True)
        ok = smoke(gateway, out)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(60) for name, proc in procs.items()}
        print("exit codes after SIGTERM:", codes)
    return 0 if ok and not any(codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
