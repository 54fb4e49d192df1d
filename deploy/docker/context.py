"""What `docker build` would put where, read without a Docker engine.

The .dockerignore rules are ported from moby/patternmatcher and dockerignore.ReadAll (what
`docker build` and BuildKit use). fnmatch is not a fair stand-in: its `*` crosses `/`, it
has no `**`, no `!` exceptions and no "a pattern matching a parent folder excludes the
file". Dockerfiles are read with dockerfile-parse; COPY lines are followed to say where a
file of the build context lands in the image.
"""

from __future__ import annotations

import json
import pathlib
import posixpath
import re
from dataclasses import dataclass

from dockerfile_parse import DockerfileParser

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "deploy/docker"


def dockerfile(service: str) -> pathlib.Path:
    """The Dockerfile of a service."""
    return DOCKER_DIR / f"{service}.Dockerfile"


# --- .dockerignore ---

@dataclass(frozen=True)
class IgnoreRule:
    """One .dockerignore line: its pattern as a regex, and whether it is a `!` exception."""
    regex: re.Pattern[str]
    exception: bool


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """patternmatcher's Pattern.compile: `*` and `?` stay inside one path element, `**`
    spans any number of them, `[...]` is a class, `\\` escapes."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*" and pattern[i + 1:i + 2] == "*":
            i += 1
            if pattern[i + 1:i + 2] == "/":
                i += 1
            out += ".*" if i + 1 == len(pattern) else "(.*/)?"
        elif ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch in ".+()|{}$":
            out += "\\" + ch
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += "\\" + pattern[i]
        else:
            out += ch
        i += 1
    return re.compile(out + "$")


def read_dockerignore(text: str) -> list[IgnoreRule]:
    """dockerignore.ReadAll: comments only at column 0, whitespace trimmed, `!` marks an
    exception, paths cleaned and made relative to the context root."""
    rules = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        pattern = line.strip()
        exception = pattern.startswith("!")
        if exception:
            pattern = pattern[1:].strip()
        pattern = posixpath.normpath(pattern).lstrip("/") or "/"
        rules.append(IgnoreRule(_pattern_regex(pattern), exception))
    return rules


def project_rules() -> list[IgnoreRule]:
    """The repository's .dockerignore rules, in order."""
    return read_dockerignore((ROOT / ".dockerignore").read_text())


def is_ignored(path: str, rules: list[IgnoreRule]) -> bool:
    """MatchesOrParentMatches: the last rule that matches the path or one of its parent
    folders decides."""
    parts = path.split("/")
    candidates = [path] + ["/".join(parts[:n]) for n in range(1, len(parts))]
    ignored = False
    for rule in rules:
        if rule.exception != ignored:
            continue  # only an exception can change an ignored path, and vice versa
        if any(rule.regex.match(c) for c in candidates):
            ignored = not rule.exception
    return ignored


def context_files(source: str, rules: list[IgnoreRule]) -> list[str]:
    """Files under a COPY source (relative to the root) that the build context holds."""
    path = ROOT / source
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    names = (p.relative_to(ROOT).as_posix() for p in files)
    return [n for n in names if not is_ignored(n, rules)]


# --- Dockerfiles ---

@dataclass
class Copy:
    """One COPY or ADD: its sources, destination and source stage."""
    sources: list[str]
    dest: str
    from_stage: str | None


@dataclass
class Stage:
    """One FROM stage of a Dockerfile and its instructions."""
    image: str
    name: str | None
    instructions: list[dict[str, str]]

    def all(self, instruction: str) -> list[str]:
        """Values of every `instruction` in this stage, in order."""
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def copies(self) -> list[Copy]:
        """Every COPY and ADD of this stage."""
        return [parse_copy(v) for v in self.all("COPY") + self.all("ADD")]

    def workdir(self) -> str:
        """The stage's working directory after every WORKDIR."""
        return posixpath.join("/", *self.all("WORKDIR"))

    def command(self) -> list[str]:
        """ENTRYPOINT + CMD in exec form, as the container runs them."""
        entry = [json.loads(v) for v in self.all("ENTRYPOINT")][-1:] or [[]]
        cmd = [json.loads(v) for v in self.all("CMD")][-1:] or [[]]
        return [*entry[0], *cmd[0]]

    def image_path(self, context_path: str) -> str | None:
        """Where a build-context file lands in this stage, or None if no COPY takes it."""
        target = None
        for copy in self.copies():
            if copy.from_stage is not None:
                continue
            dest = posixpath.join(self.workdir(), copy.dest)
            for source in (s.rstrip("/") for s in copy.sources):
                if (ROOT / source).is_dir() and context_path.startswith(source + "/"):
                    target = posixpath.join(dest, context_path[len(source) + 1:])
                elif context_path == source:
                    target = (posixpath.join(dest, posixpath.basename(source))
                              if copy.dest.endswith("/") else dest)
        return target


def parse_copy(value: str) -> Copy:
    """Parses a COPY/ADD value (flags, sources, destination; shell or JSON form)."""
    words = json.loads(value) if value.lstrip().startswith("[") else value.split()
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
    return Copy(paths[:-1], paths[-1], from_stage)


def parser(service: str) -> DockerfileParser:
    """The parsed Dockerfile of a service."""
    return DockerfileParser(path=str(dockerfile(service)))


def stages(service: str) -> list[Stage]:
    """The Dockerfile's stages in order; the last one is the image."""
    result: list[Stage] = []
    for item in parser(service).structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name, []))
        elif result:
            result[-1].instructions.append(item)
    return result
