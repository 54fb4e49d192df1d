"""The llama.cpp reference for the text bench; runs in .venv-llama, prints one JSON line.

`python -m bench.llama_reference GGUF TOKENS_JSON NEW_TOKENS THREADS`: feeds the prompt's
token ids (ours, so both read the same input), decodes NEW_TOKENS greedily, and reports
the tokens, time to first token and tokens per second. One sequence at a time: that is
what llama-cpp-python's high-level API serves.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def main(argv: list[str]) -> None:
    """Runs one greedy decode and prints its figures."""
    from llama_cpp import Llama  # only in .venv-llama

    gguf, prompt_json, new_tokens, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
    prompt: list[int] = json.loads(prompt_json)
    llm: Any = Llama(model_path=gguf, n_ctx=2048, n_threads=threads, n_batch=512,
                     logits_all=True, verbose=False)  # else llm.scores stays empty
    llm.eval(prompt[:8])  # warm-up, then start clean
    llm.reset()
    started = time.perf_counter()
    llm.eval(prompt)
    tokens: list[int] = []
    first_s = 0.0
    for _ in range(new_tokens):
        logits = llm.scores[llm.n_tokens - 1]
        token = int(logits.argmax())
        if not tokens:
            first_s = time.perf_counter() - started
        tokens.append(token)
        llm.eval([token])
    elapsed = time.perf_counter() - started
    print(json.dumps({"tokens": tokens, "first_token_s": first_s,
                      "tokens_per_s": new_tokens / (elapsed - first_s)}))


if __name__ == "__main__":
    main(sys.argv[1:])
