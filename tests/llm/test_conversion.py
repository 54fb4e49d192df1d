"""The converted SmolLM2 folder (python -m training.llm.convert) keeps the decode contract."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from services.generate.inference.backend import ModelSpec
from training.llm.decode import (
    CacheShape,
    OnnxStep,
    TorchStep,
    chunked_prefill,
    greedy_cached,
    greedy_recompute,
    onnx_session,
)
from training.llm.model import Llama
from training.llm.sources import DEFAULT_OUT, load_sources
from training.llm.tokenizer import CHECK_STRINGS

FOLDER = DEFAULT_OUT
MISSING = f"{FOLDER} is not built: run `python -m training.llm.convert` (make builds it)"


def _chat(template: str, messages: list[dict[str, str]], add_generation_prompt: bool = True
          ) -> str:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt)


@pytest.fixture(scope="module")
def meta() -> dict:
    assert (FOLDER / "model.json").is_file(), MISSING
    return json.loads((FOLDER / "model.json").read_text())


@pytest.fixture(scope="module")
def tokenizer(meta: dict) -> Tokenizer:
    return Tokenizer.from_file(str(FOLDER / meta["text"]["tokenizer"]))


@pytest.fixture(scope="module")
def cache(meta: dict) -> CacheShape:
    return CacheShape(meta["n_layers"], meta["n_heads"], meta["head_dim"])


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    # 2-core machines are shared: more threads than free cores makes torch 10x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def onnx_step(meta: dict, cache: CacheShape) -> OnnxStep:
    return OnnxStep(onnx_session(str(FOLDER / "model.onnx")), cache)


@pytest.fixture(scope="module")
def torch_model(one_thread: None) -> Llama:
    return load_sources()[1]


@pytest.fixture(scope="module")
def chat_prompt(meta: dict, tokenizer: Tokenizer) -> list[int]:
    text = _chat(meta["text"]["chat_template"],
                 [{"role": "user", "content": "Name three string instruments."}])
    return tokenizer.encode(text).ids


def test_model_json_describes_a_text_model_the_service_can_load(meta: dict) -> None:
    spec = ModelSpec.load(FOLDER)
    assert (spec.name, spec.modality) == ("smollm2-135m-instruct", "text")
    assert (spec.n_layers, spec.n_heads, spec.head_dim, spec.vocab_size) == (30, 3, 64, 49152)
    assert meta["d_model"] == 576 and meta["max_positions"] == 2048
    assert len(meta["version"]) == 12
    assert spec.text is not None and spec.text.tokenizer_file.is_file()
    card = meta["card"]
    assert card["parameters"] == 134_515_008 and card["training_time_s"] == 0
    assert card["metrics"]["parity_max_abs_logit_diff_torch_onnx"] <= 1e-3
    assert card["metrics"]["greedy_identical_prompts"] == 1.0
    assert card["licence"].startswith("Apache-2.0") and card["modes"] == []
    assert (FOLDER / "MODEL_CARD.md").read_text().count("Q4_1") >= 2


def test_tokenizer_round_trips_and_keeps_chat_tokens_whole(meta: dict,
                                                          tokenizer: Tokenizer) -> None:
    for text in CHECK_STRINGS:
        assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text
    ids = {t: tokenizer.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")}
    assert ids == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    encoded = tokenizer.encode("<|im_start|>user\nhi<|im_end|>").ids
    assert encoded[0] == 1 and encoded[-1] == 2 and len(encoded) == 5
    assert tokenizer.encode("2024").tokens == ["2", "0", "2", "4"]  # digits one by one
    assert tokenizer.encode("hello").ids == tokenizer.encode("hello", add_special_tokens=True).ids
    text = meta["text"]
    assert text["eos_token_ids"] == [ids["<|im_end|>"]] and text["pad_token_id"] == 2
    assert text["bos_token_id"] is None  # the template writes <|im_start|> itself


def test_chat_template_renders_chatml(meta: dict) -> None:
    template = meta["text"]["chat_template"]
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi there"}]
    assert _chat(template, messages) == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                                         "<|im_start|>user\nHi there<|im_end|>\n"
                                         "<|im_start|>assistant\n")
    assert _chat(template, messages, add_generation_prompt=False).endswith(
        "Hi there<|im_end|>\n")
    default_system = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                      "trained by Hugging Face<|im_end|>\n")
    assert _chat(template, messages[1:]).startswith(default_system + "<|im_start|>user\n")


def test_onnx_logits_match_torch(torch_model: Llama, onnx_step: OnnxStep, cache: CacheShape,
                                 tokenizer: Tokenizer, chat_prompt: list[int]) -> None:
    for prompt in (tokenizer.encode("The capital of France is").ids, chat_prompt):
        tokens = np.array([prompt], np.int64)
        positions = np.arange(len(prompt), dtype=np.int64)[None]
        args = (tokens, positions, np.ones_like(tokens), cache.empty(1), cache.empty(1))
        expected = TorchStep(torch_model)(*args)
        got = onnx_step(*args)
        assert expected[0].shape == got[0].shape == (1, 49152)
        assert got[1].shape == (1, 30, 3, len(prompt), 64)
        for e, g in zip(expected, got, strict=True):
            assert float(np.abs(e - g).max()) < 1e-3


def test_cached_decode_equals_full_recompute(onnx_step: OnnxStep, cache: CacheShape,
                                             chat_prompt: list[int]) -> None:
    cached = greedy_cached(onnx_step, cache, [chat_prompt], 8)
    recomputed = greedy_recompute(onnx_step, cache, chat_prompt, 8)
    assert cached.tokens == recomputed.tokens
    for a, b in zip(cached.logits, recomputed.logits, strict=True):
        assert float(np.abs(a - b).max()) < 1e-3
    # T > 1 with P > 0: the prompt in chunks ends where it does in one call.
    chunked, keys, _ = chunked_prefill(onnx_step, cache, chat_prompt, 5)
    assert keys.shape[3] == len(chat_prompt)
    assert float(np.abs(chunked - cached.logits[0][0]).max()) < 1e-3


def test_left_padded_batch_equals_each_prompt_alone(onnx_step: OnnxStep, cache: CacheShape,
                                                    tokenizer: Tokenizer,
                                                    chat_prompt: list[int]) -> None:
    prompts = [tokenizer.encode("Hello").ids, chat_prompt,
               tokenizer.encode("A chord progression in C major: C, Am, F,").ids]
    assert len({len(p) for p in prompts}) == 3
    batched = greedy_cached(onnx_step, cache, prompts, 6, pad_id=2)
    for row, prompt in enumerate(prompts):
        alone = greedy_cached(onnx_step, cache, [prompt], 6)
        assert batched.tokens[row] == alone.tokens[0]
        assert float(np.abs(batched.logits[0][row] - alone.logits[0][0]).max()) < 1e-3
