"""Decoder-only transformer whose cached forward is the ONNX graph contract (README section 2)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; saved beside every checkpoint as JSON."""

    vocab_size: int
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    max_positions: int = 1024
    dropout: float = 0.2
    tied_output: bool = True
    # A learned per-head attention bias for each distance (in tokens) below this; longer
    # distances share the last one. Lets a head find "the same voice one step back"
    # (about 5 tokens in four-part music) without having to learn it from absolute positions.
    relative_distances: int = 128

    @property
    def head_dim(self) -> int:
        """The config as a JSON-ready dict."""
        return self.d_model // self.n_heads

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelConfig:
        """A config read back from its dict."""
        return cls(**data)


class Block(nn.Module):
    """Pre-LayerNorm attention + GELU MLP, both residual."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.norm_attention = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.attention_out = nn.Linear(config.d_model, config.d_model)
        self.norm_mlp = nn.LayerNorm(config.d_model)
        self.mlp_in = nn.Linear(config.d_model, 4 * config.d_model)
        self.mlp_out = nn.Linear(4 * config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.attention_dropout_p = config.dropout
        self.distance_bias = nn.Embedding(config.relative_distances, config.n_heads)
        nn.init.zeros_(self.distance_bias.weight)

    def bias(self, distances: Tensor) -> Tensor:
        """Attention bias [..., H, T, S] for query-key distances [..., T, S] in tokens."""
        clamped = distances.clamp(0, self.distance_bias.num_embeddings - 1)
        bias: Tensor = self.distance_bias(clamped)  # [..., T, S, H]
        if bias.dim() == 3:
            return bias.permute(2, 0, 1)
        return bias.permute(0, 3, 1, 2)  # explicit dims: the exporter mishandles movedim

    def _split_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        qkv = self.qkv(self.norm_attention(x))
        qkv = qkv.view(batch, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]  # each [B, H, T, D]

    def _merge_heads(self, x: Tensor) -> Tensor:
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_dim)

    def _mlp(self, x: Tensor) -> Tensor:
        out: Tensor = self.dropout(self.mlp_out(F.gelu(self.mlp_in(self.norm_mlp(x)))))
        return x + out

    def forward_train(self, x: Tensor, distances: Tensor, causal: Tensor) -> Tensor:
        """distances: [T, T] query minus key index; causal: bool [T, T]."""
        q, k, v = self._split_heads(x)
        dropout_p = self.attention_dropout_p if self.training else 0.0
        bias = self.bias(distances).masked_fill(~causal, float("-inf")).unsqueeze(0)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        x = x + self.dropout(self.attention_out(self._merge_heads(attended)))
        return self._mlp(x)

    def forward_cached(
        self, x: Tensor, allowed: Tensor, distances: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """allowed: bool [B, 1, T, P+T]; distances: [B, T, P+T]; past_k/past_v: [B, H, P, D]."""
        q, k, v = self._split_heads(x)
        keys = torch.cat([past_k, k], dim=2)
        values = torch.cat([past_v, v], dim=2)
        scores = torch.matmul(q, keys.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = (scores + self.bias(distances)).masked_fill(~allowed, float("-inf"))
        attended = torch.matmul(torch.softmax(scores, dim=-1), values)
        x = x + self.attention_out(self._merge_heads(attended))
        return self._mlp(x), keys, values


class Transformer(nn.Module):
    """Token + learned absolute position embeddings, pre-LN blocks, final LN, output head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.max_positions, config.d_model)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm_out = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(_init_weights)
        if config.tied_output:
            self.head.weight = self.token_embedding.weight

    def forward_train(self, tokens: Tensor, position_offset: int = 0) -> Tensor:
        """Logits at every position [B, T, V]; causal, no cache.

        Every row starts at position `position_offset`. Right padding needs no mask: a
        causal model never looks at later (padded) slots.
        """
        index = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(index + position_offset)
        x = self.embedding_dropout(x)
        distances = index.unsqueeze(1) - index.unsqueeze(0)
        causal = distances >= 0
        for block in self._layers():
            x = block.forward_train(x, distances, causal)
        logits: Tensor = self.head(self.norm_out(x))
        return logits

    def forward(
        self,
        tokens: Tensor,
        positions: Tensor,
        attention_mask: Tensor,
        past_keys: Tensor,
        past_values: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The ONNX contract: logits after the last new token [B, V] and the grown cache.

        tokens, positions: int64 [B, T]; attention_mask: int64 [B, P+T] (0 = padding);
        past_keys, past_values: float32 [B, L, H, P, D], P may be 0.
        """
        new_length = tokens.shape[1]
        total_length = attention_mask.shape[1]
        # Query i sits at slot P+i of the key axis; it sees real slots up to itself.
        # Each slot always sees itself, so a padded query row is never all -inf (no NaN).
        key_slot = torch.cumsum(torch.ones_like(attention_mask[0]), 0) - 1  # [P+T]
        query_slot = key_slot[total_length - new_length :]  # [T]
        causal = key_slot.unsqueeze(0) <= query_slot.unsqueeze(1)  # [T, P+T]
        itself = key_slot.unsqueeze(0) == query_slot.unsqueeze(1)
        real = attention_mask.unsqueeze(1).bool()  # [B, 1, P+T]
        allowed = ((causal.unsqueeze(0) & real) | itself.unsqueeze(0)).unsqueeze(1)
        # Distances count real tokens only, so padding between them does not stretch them.
        real_count = torch.cumsum(attention_mask, dim=1)  # [B, P+T]
        query_count = real_count[:, total_length - new_length :]  # [B, T]
        distances = query_count.unsqueeze(2) - real_count.unsqueeze(1)  # [B, T, P+T]

        x = self.token_embedding(tokens) + self.position_embedding(positions)
        present_keys, present_values = [], []
        for layer, block in enumerate(self._layers()):
            x, keys, values = block.forward_cached(
                x, allowed, distances, past_keys[:, layer], past_values[:, layer]
            )
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
        shape = (batch, c.n_layers, c.n_heads, 0, c.head_dim)
        return torch.zeros(shape), torch.zeros(shape)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def parameter_count(model: nn.Module) -> int:
    """Distinct parameters (a tied head counts once)."""
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(model: Transformer, directory: Path, extra: dict[str, Any] | None = None
                    ) -> None:
    """Write model.pt (state_dict) and config.json (ModelConfig + `extra`) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / "model.pt")
    payload = {"model": model.config.to_json(), **(extra or {})}
    (directory / "config.json").write_text(json.dumps(payload, indent=2) + "\n")


def load_checkpoint(directory: Path) -> tuple[Transformer, dict[str, Any]]:
    """The model from save_checkpoint in eval mode, and the whole config.json."""
    payload = json.loads((Path(directory) / "config.json").read_text())
    model = Transformer(ModelConfig.from_json(payload["model"]))
    model.load_state_dict(torch.load(Path(directory) / "model.pt", weights_only=True))
    model.eval()
    return model, payload
