"""LSTM next-item recommender, written in the style of nanoGPT's ``model.py``.

A session-/sequence-based recurrent recommender after GRU4Rec (Hidasi, Karatzoglou, Baltrunas & Tikk,
"Session-based Recommendations with Recurrent Neural Networks", ICLR 2016), trained the way Klenitskiy &
Vasilev (RecSys 2023, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?") showed matters
most: full-softmax cross-entropy over the whole catalog at every position of every sequence.

The item table, the step inputs, the loss, scoring and persistence are shared with the transformer
(``models.neural``); this file is the recurrent encoder. Rows arrive padding-free (left-aligned) and run as a
packed sequence, so a history's scores do not depend on how much padding surrounds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.layers import ItemTable, NeuralConfig, init_weights
from models.neural import NeuralRecommender, SequenceNet


@dataclass
class LSTMConfig(NeuralConfig):
    dim: int = 128  # embedding size = LSTM hidden size
    n_layers: int = 1
    emb_dropout: float = 0.5  # dropout on the step inputs
    hidden_dropout: float = 0.5  # dropout on the LSTM outputs (and between layers)
    layer_norm: bool = True  # LayerNorm on the step inputs and the outputs


class LSTMNet(SequenceNet):
    def __init__(self, config: LSTMConfig):
        super().__init__()
        c = self.config = config
        self.items = ItemTable(c)
        self.in_norm = nn.LayerNorm(c.dim) if c.layer_norm else nn.Identity()
        self.emb_drop = nn.Dropout(c.emb_dropout)
        self.lstm = nn.LSTM(
            c.dim,
            c.dim,
            num_layers=c.n_layers,
            batch_first=True,
            dropout=c.hidden_dropout if c.n_layers > 1 else 0.0,
        )
        self.out_drop = nn.Dropout(c.hidden_dropout)
        self.out_proj = nn.Linear(c.dim, c.dim)
        self.out_norm = nn.LayerNorm(c.dim) if c.layer_norm else nn.Identity()
        self.apply(init_weights)

    def forward(self, items, event_types, gaps, table, lengths, last: bool = False) -> torch.Tensor:
        x = self.emb_drop(self.in_norm(self.items.embed_steps(items, event_types, gaps, table)))  # (B, T, D)
        packed = pack_padded_sequence(
            x.float(), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        with torch.autocast(
            x.device.type, enabled=False
        ):  # the recurrence in fp32; autocast is for the logits
            out, (h_n, _) = self.lstm(packed)
        if last:
            h = h_n[-1]  # (B, D): the state after each row's latest step
        else:
            h, _ = pad_packed_sequence(out, batch_first=True, total_length=items.shape[1])  # (B, T, D)
        return self.out_norm(self.out_proj(self.out_drop(h)))  # (B, T, D) or (B, D)


# the item-table parameters sat on the network itself before models.neural.ItemTable
_ITEM_TABLE_KEYS = ("item_emb.", "event_emb.", "gap_emb.", "cat_emb.", "brand_emb.", "price_emb.")
_ITEM_TABLE_NAMES = ("category", "brand", "price_bucket", "bias")


class LSTMRecommender(NeuralRecommender):
    """``score(Histories) -> (B, N+1)``, column 0 = -inf; see ``models.neural.NeuralRecommender``."""

    name = "lstm"
    config_class = LSTMConfig

    def build_net(self, config: LSTMConfig) -> LSTMNet:
        return LSTMNet(config)

    @staticmethod
    def upgrade_state(state: dict) -> dict:
        """Runs saved before the shared item table keep loading."""
        old = lambda k: k.startswith(_ITEM_TABLE_KEYS) or k in _ITEM_TABLE_NAMES  # noqa: E731
        return {("items." + k if old(k) else k): v for k, v in state.items()}
