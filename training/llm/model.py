"""A Llama decoder whose forward is the ONNX decode contract (services/generate/README.md §2).

RMSNorm, rotary position embeddings ("rotate half", Hugging Face's layout), grouped-query
attention with a key/value cache holding keys after rotary, a SwiGLU MLP, and an output
head tied to the token embedding unless the checkpoint has its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.llm.gguf_reader import GgufModel


@dataclass(frozen=True)
class LlamaConfig:
    """Shape of the network."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    rope_theta: float
    rms_eps: float
    tied_output: bool = True

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return asdict(self)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, in float32."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalised x, same shape."""
        scale = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * (x * scale)


class Rotary(nn.Module):
    """Rotary embedding of absolute positions; rotates each head's two halves together."""

    inverse_frequency: Tensor

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
        self.register_buffer("inverse_frequency", 1.0 / theta ** exponents, persistent=False)

    def angles(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin [B, 1, T, D] for positions int64 [B, T]."""
        angles = positions.unsqueeze(-1).float() * self.inverse_frequency  # [B, T, D/2]
        both = torch.cat([angles, angles], dim=-1).unsqueeze(1)
        return both.cos(), both.sin()

    @staticmethod
    def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x [B, H, T, D] rotated by the angles from `angles`."""
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin


class Block(nn.Module):
    """Pre-norm grouped-query attention and SwiGLU MLP, both residual."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.head_dim
        d, kv = config.d_model, config.n_kv_heads * config.head_dim
        self.attention_norm = RMSNorm(d, config.rms_eps)
        self.query = nn.Linear(d, config.n_heads * config.head_dim, bias=False)
        self.key = nn.Linear(d, kv, bias=False)
        self.value = nn.Linear(d, kv, bias=False)
        self.attention_out = nn.Linear(config.n_heads * config.head_dim, d, bias=False)
        self.mlp_norm = RMSNorm(d, config.rms_eps)
        self.gate = nn.Linear(d, config.d_ff, bias=False)
        self.up = nn.Linear(d, config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, d, bias=False)

    def forward(self, x: Tensor, rotary: tuple[Tensor, Tensor], allowed: Tensor,
                past_k: Tensor, past_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [B, T, d]; allowed bool [B, 1, 1, T, P+T]; past_k/past_v [B, Hkv, P, D].

        Returns the new x and this layer's grown keys and values [B, Hkv, P+T, D].
        """
        batch, length, _ = x.shape
        h = self.attention_norm(x)
        q = self.query(h).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.key(h).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.value(h).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = Rotary.rotate(q, *rotary), Rotary.rotate(k, *rotary)
        keys = torch.cat([past_k, k], dim=2)
        values = torch.cat([past_v, v], dim=2)
        # Query head h reads kv head h // group: group the queries instead of copying keys.
        group = self.n_heads // self.n_kv_heads
        q = q.reshape(batch, self.n_kv_heads, group, length, self.head_dim)
        scores = torch.matmul(q, keys.unsqueeze(2).transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed, float("-inf"))  # [B, Hkv, group, T, P+T]
        attended = torch.matmul(torch.softmax(scores, dim=-1), values.unsqueeze(2))
        attended = attended.reshape(batch, self.n_heads, length, self.head_dim)
        merged = attended.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_dim)
        x = x + self.attention_out(merged)
        h = self.mlp_norm(x)
        x = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return x, keys, values


class Llama(nn.Module):
    """Token embedding, blocks, final RMSNorm, output head; forward is the ONNX contract."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.rotary = Rotary(config.head_dim, config.rope_theta)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm_out = RMSNorm(config.d_model, config.rms_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tied_output:
            self.head.weight = self.token_embedding.weight

    def forward(self, tokens: Tensor, positions: Tensor, attention_mask: Tensor,
                past_keys: Tensor, past_values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits after the last new token [B, V] and the grown cache [B, L, Hkv, P+T, D].

        tokens, positions: int64 [B, T]; attention_mask: int64 [B, P+T], 0 = padding (rows
        are left-padded in both the past and the new slots); past_keys/past_values: float32
        [B, L, Hkv, P, D], P may be 0.
        """
        new_length = tokens.shape[1]
        total_length = attention_mask.shape[1]
        # Query i sits at slot P+i of the key axis; it sees real slots up to itself. Each
        # slot always sees itself, so a padded query row is never all -inf (no NaN).
        key_slot = torch.cumsum(torch.ones_like(attention_mask[0]), 0) - 1  # [P+T]
        query_slot = key_slot[total_length - new_length:]  # [T]
        causal = key_slot.unsqueeze(0) <= query_slot.unsqueeze(1)  # [T, P+T]
        itself = key_slot.unsqueeze(0) == query_slot.unsqueeze(1)
        real = attention_mask.unsqueeze(1).bool()  # [B, 1, P+T]
        allowed = ((causal.unsqueeze(0) & real) | itself.unsqueeze(0))[:, None, None]
        rotary = self.rotary.angles(positions)

        x = self.token_embedding(tokens)
        present_keys, present_values = [], []
        for layer, block in enumerate(self._layers()):
            x, keys, values = block(x, rotary, allowed, past_keys[:, layer],
                                    past_values[:, layer])
            present_keys.append(keys)
            present_values.append(values)
        logits = self.head(self.norm_out(x[:, -1]))
        return logits, torch.stack(present_keys, dim=1), torch.stack(present_values, dim=1)

    def _layers(self) -> Iterable[Block]:
        # nn.ModuleList is typed as holding any nn.Module; these are the Blocks built above.
        return cast("Iterable[Block]", self.blocks)

    def empty_cache(self, batch: int) -> tuple[Tensor, Tensor]:
        """A P == 0 cache for `batch` rows."""
        c = self.config
        shape = (batch, c.n_layers, c.n_kv_heads, 0, c.head_dim)
        return torch.zeros(shape), torch.zeros(shape)


def parameter_count(model: nn.Module) -> int:
    """Distinct parameters (a tied head counts once)."""
    return sum(p.numel() for p in model.parameters())


# Our parameter names, by GGUF name (per block: "blk.{i}." + key).
_BLOCK_NAMES = {
    "attn_norm.weight": "attention_norm.weight",
    "attn_q.weight": "query.weight",
    "attn_k.weight": "key.weight",
    "attn_v.weight": "value.weight",
    "attn_output.weight": "attention_out.weight",
    "ffn_norm.weight": "mlp_norm.weight",
    "ffn_gate.weight": "gate.weight",
    "ffn_up.weight": "up.weight",
    "ffn_down.weight": "down.weight",
}


def from_gguf(source: GgufModel) -> Llama:
    """Our model in eval mode, holding the GGUF's dequantised weights."""
    h = source.hyper
    tied = "output.weight" not in source.tensors
    config = LlamaConfig(vocab_size=h.vocab_size, d_model=h.d_model, n_layers=h.n_layers,
                         n_heads=h.n_heads, n_kv_heads=h.n_kv_heads, d_ff=h.d_ff,
                         rope_theta=h.rope_theta, rms_eps=h.rms_eps, tied_output=tied)
    names = {"token_embd.weight": "token_embedding.weight", "output_norm.weight": "norm_out.weight"}
    if not tied:
        names["output.weight"] = "head.weight"
    for layer in range(h.n_layers):
        for gguf_name, ours in _BLOCK_NAMES.items():
            names[f"blk.{layer}.{gguf_name}"] = f"blocks.{layer}.{ours}"
    unused = sorted(set(source.tensors) - set(names))
    if unused:
        raise ValueError(f"GGUF tensors this model does not know: {unused[:5]}")
    with torch.device("meta"):  # no random init of 135M parameters only to overwrite them
        model = Llama(config)
    state = {ours: torch.from_numpy(np.asarray(source.tensors[theirs]))
             for theirs, ours in names.items()}
    model.load_state_dict(state, strict=False, assign=True)
    if tied:
        model.head.weight = model.token_embedding.weight
    model.rotary = Rotary(config.head_dim, config.rope_theta)  # buffers left on meta above
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ValueError(f"parameters the GGUF does not provide: {missing[:5]}")
    return model.eval()
