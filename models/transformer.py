"""Causal self-attention next-item recommender (GPT / SASRec style), written in the style of nanoGPT's
``model.py``.

SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) reads a user's steps with a
stack of causal self-attention blocks and predicts the next item at every position. Trained with
cross-entropy over the full catalog instead of SASRec's one sampled negative, it matches or beats BERT4Rec
(Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys 2023).

It reads the same inputs as the LSTM (``models.neural``): item (id + side features), event type and time gap
per step, plus a learned position. Rows arrive padding-free and left-aligned, so with causal attention a real
step never attends to padding and a history scores the same however much padding surrounds it. The output
is tied to the item table: logits = h @ E^T + b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.layers import ItemTable, NeuralConfig
from models.neural import NeuralRecommender, SequenceNet


@dataclass
class TransformerConfig(NeuralConfig):
    dim: int = 64  # embedding size = model width
    n_layers: int = 2  # transformer blocks
    n_heads: int = 2  # attention heads (dim must divide by it)
    dropout: float = 0.3  # on the step inputs, the attention weights and each block's outputs
    lr: float = 2e-3
    weight_decay: float = 0.1
    max_epochs: int = 40  # the cosine schedule's length (Beauty: validation peaked at epoch 30 of 40)
    patience: int = 6


class CausalSelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        assert c.dim % c.n_heads == 0, "dim must be a multiple of n_heads"
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.qkv = nn.Linear(c.dim, 3 * c.dim)  # query, key, value for all heads in one matmul
        self.proj = nn.Linear(c.dim, c.dim)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)  # each (B, T, D)
        heads = lambda t: t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)  # noqa: E731 (B, H, T, Dh)
        y = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, Dh)
        y = y.transpose(1, 2).contiguous().view(B, T, D)  # (B, T, D)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(c.dim, 4 * c.dim)
        self.proj = nn.Linear(4 * c.dim, c.dim)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))  # (B, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.dim)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.dim)
        self.mlp = MLP(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))  # (B, T, D)


class TransformerNet(SequenceNet):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = self.config = config
        self.items = ItemTable(c)
        self.pos_emb = nn.Embedding(c.max_len, c.dim)  # position from the start of the window
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.dim)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scaled init of the residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()

    def forward(self, items, event_types, gaps, table, lengths, last: bool = False) -> torch.Tensor:
        T = items.shape[1]
        pos = torch.arange(T, device=items.device)
        x = self.items.embed_steps(items, event_types, gaps, table) + self.pos_emb(pos)  # (B, T, D)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        if last:  # the state after each row's latest step (a row without steps reads its padding step)
            at = (lengths - 1).clamp(min=0).to(x.device).view(-1, 1, 1).expand(-1, 1, x.shape[-1])
            x = x.gather(1, at).squeeze(1)  # (B, D)
        return self.ln_f(x)  # (B, T, D) or (B, D)


class TransformerRecommender(NeuralRecommender):
    """``score(Histories) -> (B, N+1)``, column 0 = -inf; see ``models.neural.NeuralRecommender``."""

    name = "transformer"
    config_class = TransformerConfig

    def build_net(self, config: TransformerConfig) -> TransformerNet:
        return TransformerNet(config)
