"""A Hugging Face `tokenizers.Tokenizer` built from a GGUF's byte-level BPE vocabulary.

llama.cpp's pre-tokenizer "smollm" (LLAMA_VOCAB_PRE_TYPE_SMOLLM) splits every digit off
on its own, then applies GPT-2's regex; SmolLM's own tokenizer.json says the same with
`Digits(individual_digits=True)` then `ByteLevel`. The CONTROL tokens (<|im_start|>,
<|im_end|>, <|endoftext|>, ...) are added as special tokens so text containing them
encodes to their single ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from training.llm.gguf_reader import TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED, GgufVocabulary

# Pre-tokenizers we can rebuild, by llama.cpp's name for them.
_DIGIT_SPLITTING_PRE = {"smollm", "starcoder", "refact", "codeshell"}
_PLAIN_GPT2_PRE = {"gpt2", "default"}

# Strings the tokenizer must round-trip and encode as transformers does.
CHECK_STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  two leading spaces, trailing space ",
    "tabs\tand\nnewlines\n\n\nand CRLF\r\n",
    "numbers: 12345, 3.14159, -7e10, 2024-12-01, x1y22z333",
    "punctuation ... !?;:'\"()[]{}<>@#$%^&*-_=+\\|/~`",
    "can't won't it's we'll they've I'd you're",
    "Ünïcödé àccents, Ελληνικά, русский, 日本語の音楽, 한국어",
    "emoji 🎹🎵🎶 and a ZWJ 👩‍🎤",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|endoftext|>after end of text",
    "def f(x):\n    return x ** 2  # code\n",
]


def build_tokenizer(vocabulary: GgufVocabulary) -> Tokenizer:
    """The tokenizer the GGUF describes; no BOS is added unless the GGUF asks for one."""
    if vocabulary.model != "gpt2":
        raise ValueError(f"tokenizer {vocabulary.model!r} unsupported: only gpt2 byte-level BPE")
    vocab = {token: index for index, token in enumerate(vocabulary.tokens)}
    merges = [_split_merge(m) for m in vocabulary.merges]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False,
                                     ignore_merges=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if vocabulary.pre in _DIGIT_SPLITTING_PRE:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif vocabulary.pre in _PLAIN_GPT2_PRE:
        tokenizer.pre_tokenizer = byte_level
    else:
        raise ValueError(f"pre-tokenizer {vocabulary.pre!r} not supported here")
    tokenizer.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False)
               for t, kind in zip(vocabulary.tokens, vocabulary.token_types, strict=True)
               if kind == TOKEN_TYPE_CONTROL]
    tokenizer.add_special_tokens(special)
    user = [AddedToken(t, special=False, normalized=False)
            for t, kind in zip(vocabulary.tokens, vocabulary.token_types, strict=True)
            if kind == TOKEN_TYPE_USER_DEFINED]
    if user:
        tokenizer.add_tokens(user)
    if vocabulary.add_bos_token:
        raise ValueError("GGUF asks for a BOS on every text; not wired here")
    if tokenizer.get_vocab_size(with_added_tokens=True) != len(vocabulary.tokens):
        raise ValueError("special tokens outside the vocabulary")
    return tokenizer


def _split_merge(merge: str) -> tuple[str, str]:
    left, right = merge.split(" ")
    return left, right


def round_trip_failures(tokenizer: Tokenizer, texts: Sequence[str]) -> list[str]:
    """Texts that do not decode back to themselves (special tokens kept)."""
    return [text for text in texts
            if tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) != text]


def transformers_mismatches(tokenizer: Tokenizer, gguf_path: Path, texts: Sequence[str]
                            ) -> list[tuple[str, list[int], list[int]]]:
    """(text, ours, transformers') where transformers' tokenizer from the GGUF disagrees."""
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    mismatches = []
    for text in texts:
        ours = tokenizer.encode(text).ids
        theirs = list(reference(text, add_special_tokens=True)["input_ids"])
        if ours != theirs:
            mismatches.append((text, ours, theirs))
    return mismatches


def render_chat(chat_template: str, messages: Sequence[dict[str, str]],
                add_generation_prompt: bool = True) -> str:
    """The chat as text, rendered in a sandbox with the settings transformers uses."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(chat_template)
    return template.render(messages=list(messages), add_generation_prompt=add_generation_prompt)


def save(tokenizer: Tokenizer, path: Path) -> None:
    """tokenizer.json, one line."""
    tokenizer.save(str(path), pretty=False)
