"""The converted SmolLM2 (tokenizer and model) for the lyrics tests; skipped without it."""

from __future__ import annotations

import pathlib

import pytest
from tokenizers import Tokenizer

from services.generate.text.lyrics.lexicon import Lexicon, lexicon_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
LLM_DIR = ROOT / "models" / "generate" / "smollm2-135m-instruct"
needs_llm = pytest.mark.skipif(not (LLM_DIR / "model.json").exists(),
                               reason="run `make text-llm` first (make test does)")


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    if not (LLM_DIR / "tokenizer.json").exists():
        pytest.skip("run `make text-llm` first (make test does)")
    return Tokenizer.from_file(str(LLM_DIR / "tokenizer.json"))


@pytest.fixture(scope="session")
def lexicon(tokenizer: Tokenizer) -> Lexicon:
    return lexicon_for(tokenizer, tokenizer.get_vocab_size())
