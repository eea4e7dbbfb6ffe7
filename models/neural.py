"""What the neural sequence models share: the item table, padding-free inputs, the loss, scoring and
persistence. ``models.lstm`` and ``models.transformer`` each add only their sequence encoder.

An item's representation is its id embedding + its side features (category, brand, price bucket, from
``ItemSide``), and the same table scores the output (tied embeddings): logits = h @ E^T + b. An item the model
never saw in training therefore still scores through its side features (cold start); ``add_items`` appends
brand-new catalog items with a zero id embedding. One step's input is the item's representation + an
event-type embedding + a time-gap-bucket embedding.

Padding (item 0) is removed wherever it sits: each row is compacted (order kept, ``compact_left``), so a
history's scores do not depend on how much padding surrounds it. Masked copies of one history (SHAP) score in
one forward pass, and a fully padded history still gives finite scores.

Training is full-softmax cross-entropy over the whole catalog at every position of every sequence (Klenitskiy
& Vasilev, RecSys 2023); above ``sampled_softmax_above`` items, a sampled softmax with logQ correction (Yi et
al., RecSys 2019) over negatives shared across the batch. The loop itself is ``models.train``.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import train as trainer
from models.base import EvalSet, Histories, ItemSide, Recommender, SequenceData
from models.layers import SIDE, FullSoftmaxCE, ItemTable, NeuralConfig, compact_left

LENGTH_CHUNK = 256  # rows per forward pass when a large batch is scored in chunks of similar length


class SequenceNet(nn.Module):
    """What a neural sequence model's network provides: ``items`` (an ``ItemTable``) and ``forward``."""

    items: ItemTable

    @abstractmethod
    def forward(
        self,
        items: torch.Tensor,
        event_types: torch.Tensor | None,
        gaps: torch.Tensor | None,
        table: torch.Tensor,
        lengths: torch.Tensor,
        last: bool = False,
    ) -> torch.Tensor:
        """Left-aligned rows (B, T) with real steps in [0, length) → (B, T, D) states; the state at position
        t scores the item after step t (against ``table``). With ``last``: (B, D), the state after each row's
        latest step (position length - 1; a row without steps reads its one padding step)."""


class NeuralRecommender(Recommender):
    """A ``SequenceNet`` behind the ``Recommender`` interface: scoring, the training loss, fit / fine-tune
    through ``models.train``, cold-start items, save and load. Subclasses set ``name``, ``config_class`` and
    ``build_net``."""

    config_class: type[NeuralConfig] = NeuralConfig
    can_finetune = True

    def __init__(self, config: NeuralConfig, side: ItemSide | None = None):
        sizes = {}  # side-feature table sizes come from the ItemSide when the config leaves them at 0
        if side is not None:
            for field_name, size in SIDE:
                if getattr(side, field_name) is not None and getattr(config, size) == 0:
                    sizes[size] = max(1, int(getattr(side, size)))
        self.config = dataclasses.replace(config, **sizes)  # the model's own copy: add_items grows it
        self.n_items = self.config.n_items
        with torch.random.fork_rng(devices=[]):  # the same seed gives the same initial weights
            torch.manual_seed(self.config.seed)
            self.net = self.build_net(self.config)
        self.net.items.set_side(side)
        self.history: list[dict] = []  # per-epoch curve of the last fit
        self.train_seconds = 0.0
        self._table_cache: tuple | None = None  # (parameter versions, table, transposed table)

    @abstractmethod
    def build_net(self, config: NeuralConfig) -> SequenceNet: ...

    # --- Recommender: learning ---
    def fit(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> NeuralRecommender:
        """Pretrain on every next-step target of ``train`` (``models.train.pretrain``)."""
        self._check_catalog(train)
        return trainer.pretrain(self, train, valid, time_budget_s=time_budget_s, progress=progress)

    def finetune(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> NeuralRecommender:
        """Continue at ``lr * finetune_lr_scale`` on the targets ``train.target_mask`` selects."""
        self._check_catalog(train)
        return trainer.finetune(self, train, valid, time_budget_s=time_budget_s, progress=progress)

    def _check_catalog(self, train: SequenceData) -> None:
        if train.n_items > self.n_items:
            raise ValueError(f"the data has {train.n_items} items, the model was built for {self.n_items}")

    # --- Recommender: scoring ---
    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def reads_gaps(self) -> bool:
        return self.config.n_gap_buckets > 0

    @property
    def device(self) -> torch.device:
        return self.net.items.item_emb.weight.device

    def to(self, device: torch.device | str) -> NeuralRecommender:
        self.net.to(device)
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        was_training = self.net.training
        if was_training:  # walking every module to set the mode costs milliseconds a call: only when needed
            self.net.eval()
        try:
            with torch.no_grad():  # not inference_mode: callers (top_k, SHAP) edit the scores in place
                items, ev, gaps, lengths = compact_left(histories.to(self.device), self.config.max_len)
                table, table_t = self._eval_table()  # (N+1, D), (D, N+1) or None
                h = self._last_states(items, ev, gaps, table, lengths)  # (B, D)
                s = self.net.items.logits(h, table, table_t).float()  # (B, N+1)
                s[:, 0] = float("-inf")
                return s
        finally:
            if was_training:
                self.net.train()

    def _last_states(self, items, ev, gaps, table, lengths) -> torch.Tensor:
        """(B, D) states after each row's latest step. A large batch runs in chunks of similar length, each
        cut to its own longest row: padding costs a transformer as much as a real step, and a population's
        lengths are skewed (the demo shop: window 140, most shoppers far shorter). Rows are independent, so
        the states are the same as in one pass."""
        B = items.shape[0]
        if B <= LENGTH_CHUNK:
            return self.net(items, ev, gaps, table, lengths, last=True)
        order = torch.argsort(lengths, stable=True)
        out = None
        for rows in order.split(LENGTH_CHUNK):
            t = max(1, int(lengths[rows].max()))
            ev_t, gaps_t = (None if x is None else x[rows, :t] for x in (ev, gaps))
            h = self.net(items[rows, :t], ev_t, gaps_t, table, lengths[rows], last=True)  # (b, D)
            if out is None:
                out = h.new_empty(B, h.shape[1])
            out[rows] = h
        return out

    def _eval_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The item table (N+1, D) and, on the CPU, its contiguous transpose (D, N+1) for the logits; rebuilt
        only when a parameter or side buffer changed (serving calls score once per homepage; rebuilding id +
        side embeddings for the whole catalog each time is waste)."""
        items = self.net.items  # the table depends on the item table's tensors only
        key = tuple((id(t), t._version, t.device) for t in [*items.parameters(), *items.buffers()])
        cached = self._table_cache
        if cached is None or cached[0] != key:
            table = self.net.items.table()
            table_t = table.t().contiguous() if table.device.type == "cpu" else None
            cached = (key, table, table_t)
            self._table_cache = cached
        return cached[1], cached[2]

    def item_embeddings(self) -> torch.Tensor:
        """(N+1, D) item representations (id + side features) used for scoring; row 0 = padding."""
        with torch.no_grad():
            return self.net.items.table().detach().clone()

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        """New catalog items get a zero id embedding and mean bias: scored by side features alone."""
        self.net.items.add_items(n_new, side)
        self.config.n_items += n_new
        self.n_items = self.config.n_items

    # --- training (models.train calls this) ---
    def train_loss(
        self,
        items: torch.Tensor,
        targets: torch.Tensor,
        lengths: torch.Tensor,
        event_types: torch.Tensor | None = None,
        gaps: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean next-item CE over real positions. All (B, T) left-aligned; targets 0 where no target (fine-tuning
        slices arrive with the other targets already zeroed). ``log_q`` (N+1,) = log sampling probabilities,
        used above ``sampled_softmax_above`` items."""
        net, c = self.net, self.config
        id_keep = None
        if net.training and net.items.has_side and c.id_dropout > 0:
            id_keep = (torch.rand(c.n_items + 1, device=items.device) >= c.id_dropout).float()
        table = net.items.table(id_keep)  # (N+1, D)
        states = net(items, event_types, gaps, table, lengths)  # (B, T, D)
        keep = targets[:, : states.shape[1]] > 0  # (B, T)
        h, y = states[keep], targets[:, : states.shape[1]][keep]  # (M, D), (M,)
        if y.numel() == 0:
            return table.sum() * 0.0
        if c.n_items <= c.sampled_softmax_above or log_q is None:
            # full softmax over all N+1 rows (row 0 = padding: a zero vector, one harmless extra negative);
            # addmm and no column slicing keep the (M, N+1) logits to one contiguous buffer
            return FullSoftmaxCE.apply(net.items.logits(h, table).float(), y)
        return self._sampled_softmax(h, y, table, log_q)

    def _sampled_softmax(self, h, y, table, log_q):
        # shared negatives drawn from q; logQ correction subtracts log(S * q) from every logit
        neg = torch.multinomial(log_q.exp(), self.config.n_negatives, replacement=True)  # (S,)
        pos = (h * table[y]).sum(-1) - log_q[y]  # (M,)
        neg_l = h @ table[neg].t() - log_q[neg]  # (M, S)
        bias = self.net.items.bias
        if bias is not None:
            pos = pos + bias[y]
            neg_l = neg_l + bias[neg]
        neg_l = neg_l.masked_fill(neg.unsqueeze(0) == y.unsqueeze(1), float("-inf"))  # accidental hits
        logits = torch.cat([pos.unsqueeze(1), neg_l], dim=1)  # (M, 1+S)
        return F.cross_entropy(logits.float(), torch.zeros_like(y))

    # --- persistence ---
    def config_dict(self) -> dict:
        return asdict(self.config)

    def save_state(self, directory: Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        torch.save(state, Path(directory) / "model.pt")

    @classmethod
    def load_state(cls, config: dict, directory: Path) -> NeuralRecommender:
        known = {f.name for f in fields(cls.config_class)}
        model = cls(cls.config_class(**{k: v for k, v in config.items() if k in known}))
        state = torch.load(Path(directory) / "model.pt", map_location="cpu", weights_only=True)
        model.net.load_state_dict(cls.upgrade_state(state))
        model.net.eval()
        return model

    @staticmethod
    def upgrade_state(state: dict) -> dict:
        """A state dict saved by an earlier layout of the network, in today's names (default: unchanged)."""
        return state

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def flops_per_user(self) -> float:
        """Multiply-adds x 2 of the output layer, the bulk of scoring: D * (N+1) * 2."""
        return 2.0 * self.config.dim * (self.config.n_items + 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_items={self.n_items}, dim={self.config.dim}, params={self.n_params():,})"
