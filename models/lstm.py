"""LSTM next-item recommender, written in the style of nanoGPT's ``model.py``.

A session-/sequence-based recurrent recommender after GRU4Rec (Hidasi, Karatzoglou, Baltrunas & Tikk,
"Session-based Recommendations with Recurrent Neural Networks", ICLR 2016), trained the way Klenitskiy &
Vasilev (RecSys 2023, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?") showed
matters most: full-softmax cross-entropy over the whole catalog at every position of every sequence.

One step's input is the item's representation + an event-type embedding + a time-gap-bucket embedding.
An item's representation is its id embedding + its side features (category, brand, price bucket, from
``ItemSide``) and the same table scores the output (tied embeddings): logits = h @ E^T + b. An item the
model never saw in training therefore still scores through its side features (cold start); ``add_items``
appends brand-new catalog items with a zero id embedding.

Padding (item 0) is removed, wherever it sits: each row is compacted (order kept) and run as a packed
sequence, so a history's scores do not depend on how much padding surrounds it. That makes masked copies of
one history (SHAP) score in one forward pass, and a fully padded history still gives finite scores.

Above ``sampled_softmax_above`` items the training loss is a sampled softmax with logQ correction
(Yi et al., RecSys 2019) over negatives shared across the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from models.base import EVENT_TYPES, N_EVENT_TYPES, Histories, ItemSide, Recommender

PURCHASE = EVENT_TYPES["purchase"]  # what an absent event-type tensor means


@dataclass
class LSTMConfig:
    # --- model ---
    n_items: int = 0  # dense ids 1..n_items, 0 = padding
    dim: int = 128  # embedding size = LSTM hidden size
    n_layers: int = 1
    emb_dropout: float = 0.5  # dropout on the step inputs
    hidden_dropout: float = 0.5  # dropout on the LSTM outputs (and between layers)
    layer_norm: bool = True  # LayerNorm on the step inputs and the outputs
    item_bias: bool = True
    max_len: int = 50  # most recent items the model reads
    n_event_types: int = N_EVENT_TYPES
    n_gap_buckets: int = 0  # 0 = no time-gap feature
    n_categories: int = 0  # 0 = no side feature of that kind
    n_brands: int = 0
    n_price_buckets: int = 0
    id_dropout: float = 0.1  # training only, with side features: share of items scored by side features alone
    # --- loss ---
    sampled_softmax_above: int = 100_000  # catalogs larger than this train with sampled softmax + logQ
    n_negatives: int = 8192
    # --- training (models.train) ---
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.05  # AdamW, matrices and embeddings only
    max_epochs: int = 30
    warmup_frac: float = 0.05  # linear warm-up, then cosine decay to lr * 0.01
    grad_clip: float = 1.0
    patience: int = 4  # epochs without a better validation NDCG@10
    finetune_lr_scale: float = 0.1
    seed: int = 1337


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of (M, N+1) logits that reuses the logits buffer for the gradient
    (softmax - one-hot), skipping the extra (M, N+1) buffers of log_softmax + nll_loss."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lse = torch.logsumexp(logits, 1)  # (M,)
        loss = (lse - logits.gather(1, y.unsqueeze(1)).squeeze(1)).mean()
        ctx.save_for_backward(logits, lse, y)
        return loss

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        logits, lse, y = ctx.saved_tensors
        grad = logits.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place: the logits are not needed again
        grad.scatter_add_(1, y.unsqueeze(1), torch.full_like(lse, -1.0).unsqueeze(1))
        return grad.mul_(g / logits.shape[0]), None


class LSTMNet(nn.Module):
    def __init__(self, config: LSTMConfig):
        super().__init__()
        c = config
        self.config = c
        n = c.n_items + 1
        self.item_emb = nn.Embedding(n, c.dim, padding_idx=0)
        self.event_emb = nn.Embedding(c.n_event_types, c.dim, padding_idx=0)
        self.gap_emb = nn.Embedding(c.n_gap_buckets, c.dim, padding_idx=0) if c.n_gap_buckets else None
        self.cat_emb = nn.Embedding(c.n_categories, c.dim, padding_idx=0) if c.n_categories else None
        self.brand_emb = nn.Embedding(c.n_brands, c.dim, padding_idx=0) if c.n_brands else None
        self.price_emb = nn.Embedding(c.n_price_buckets, c.dim, padding_idx=0) if c.n_price_buckets else None
        # per-item side-feature codes (0 = unknown); buffers so they travel with the state dict
        for name, emb in (
            ("category", self.cat_emb),
            ("brand", self.brand_emb),
            ("price_bucket", self.price_emb),
        ):
            self.register_buffer(name, torch.zeros(n, dtype=torch.long) if emb is not None else None)
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
        self.bias = nn.Parameter(torch.zeros(n)) if c.item_bias else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02 if m.weight.shape[0] > 64 else 0.05)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def has_side(self) -> bool:
        return any(e is not None for e in (self.cat_emb, self.brand_emb, self.price_emb))

    def set_side(self, side: ItemSide | None) -> None:
        """Copy per-item side codes (N+1,) into the model's buffers (codes beyond the table → unknown)."""
        if side is None:
            return
        for name, emb in (
            ("category", self.cat_emb),
            ("brand", self.brand_emb),
            ("price_bucket", self.price_emb),
        ):
            codes = getattr(side, name)
            if emb is None or codes is None:
                continue
            codes = codes.to(self.item_emb.weight.device).long()
            codes = torch.where((codes >= 0) & (codes < emb.num_embeddings), codes, torch.zeros_like(codes))
            buf = getattr(self, name)
            m = min(buf.shape[0], codes.shape[0])
            buf.zero_()
            buf[:m] = codes[:m]

    def side_table(self) -> torch.Tensor | None:
        """Side-feature part of every item's representation, (N+1, D), or None."""
        out = None
        for name, emb in (
            ("category", self.cat_emb),
            ("brand", self.brand_emb),
            ("price_bucket", self.price_emb),
        ):
            if emb is not None:
                v = emb(getattr(self, name))  # (N+1, D)
                out = v if out is None else out + v
        return out

    def item_table(self, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Every item's representation (N+1, D): id embedding (+ side features)."""
        e = self.item_emb.weight  # (N+1, D)
        if id_keep is not None:
            e = e * id_keep.unsqueeze(1)
        side = self.side_table()
        if side is not None:
            e = e + side
        return e

    def encode(
        self,
        items: torch.Tensor,
        event_types: torch.Tensor | None,
        gaps: torch.Tensor | None,
        table: torch.Tensor,
        lengths: torch.Tensor,
    ):
        """Run the LSTM over left-aligned rows. items (B, T) with real items in [0, length).
        Returns (PackedSequence of outputs, sum(lengths) x D in packed order; last hidden (B, D))."""
        x = F.embedding(items, table)  # (B, T, D)
        ev = event_types if event_types is not None else torch.full_like(items, PURCHASE)
        x = x + self.event_emb(ev.clamp(0, self.config.n_event_types - 1))
        if self.gap_emb is not None and gaps is not None:
            x = x + self.gap_emb(gaps.clamp(0, self.config.n_gap_buckets - 1))
        x = self.emb_drop(self.in_norm(x))  # (B, T, D)
        packed = pack_padded_sequence(
            x.float(), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        with torch.autocast(
            x.device.type, enabled=False
        ):  # the recurrence in fp32; autocast is for the logits
            out, (h_n, _) = self.lstm(packed)
        return out, h_n[-1]  # PackedSequence, (B, D)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out_norm(self.out_proj(self.out_drop(h)))  # (M, D)

    def logits(
        self, h: torch.Tensor, table: torch.Tensor, table_t: torch.Tensor | None = None
    ) -> torch.Tensor:
        """h (M, D) against every item; ``table_t``: the same table as a contiguous (D, N+1) copy, which makes
        the CPU's one-user matrix-vector product about 3x faster than the transposed view."""
        t = table.t() if table_t is None else table_t  # (D, N+1)
        if self.bias is not None:
            return torch.addmm(self.bias, h, t)  # (M, N+1)
        return h @ t  # (M, N+1)


def compact_left(
    h: Histories, max_len: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """Left-padded (or holed) histories -> left-aligned rows of real items (order kept), truncated to the
    ``max_len`` most recent. Returns items, event_types, gaps (each (B, T') or None) and lengths (B,)."""
    items = h.items.long()
    if items.shape[1] == 0:  # no columns at all: one padding column, scored like a fully padded history
        items = torch.zeros(items.shape[0], 1, dtype=torch.long, device=items.device)
        h = Histories(items)
    nz = items != 0  # (B, T)
    lengths = nz.sum(1)  # (B,)
    # real positions first (stable keeps time order), padding after
    order = torch.argsort((~nz).to(torch.int8), dim=1, stable=True)  # (B, T)
    # keep only the most recent max_len: shift each row so its last max_len real items start at 0
    drop = (lengths - max_len).clamp(min=0)  # (B,)
    t = max(1, min(int(lengths.max().item()) if items.numel() else 1, max_len))
    idx = (drop.unsqueeze(1) + torch.arange(t, device=items.device).unsqueeze(0)).clamp(
        max=items.shape[1] - 1
    )
    order = order.gather(1, idx)  # (B, T')
    lengths = lengths.clamp(max=max_len)
    valid = torch.arange(t, device=items.device).unsqueeze(0) < lengths.unsqueeze(1)

    def take(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.long().gather(1, order) * valid

    return take(items), take(h.event_types), take(h.gaps), lengths


class LSTMRecommender(Recommender):
    """Recommender wrapper: ``score(Histories) -> (B, N+1)``, column 0 = -inf."""

    name = "lstm"

    def __init__(self, config: LSTMConfig, side: ItemSide | None = None):
        if side is not None:  # side-feature table sizes come from the ItemSide when not set
            for f, n in (
                ("category", "n_categories"),
                ("brand", "n_brands"),
                ("price_bucket", "n_price_buckets"),
            ):
                if getattr(side, f) is not None and getattr(config, n) == 0:
                    setattr(config, n, max(1, int(getattr(side, n))))
        self.config = config
        self.n_items = config.n_items
        self.net = LSTMNet(config)
        self.net.set_side(side)
        self.history: list[dict] = []  # per-epoch curve, set by models.train

    # --- Recommender ---
    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def reads_gaps(self) -> bool:
        return self.config.n_gap_buckets > 0

    def training_curve(self) -> list[dict]:
        return self.history

    @property
    def device(self) -> torch.device:
        return self.net.item_emb.weight.device

    def to(self, device: torch.device | str) -> LSTMRecommender:
        self.net.to(device)
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():  # not inference_mode: callers (top_k, SHAP) edit the scores in place
                items, ev, gaps, lengths = compact_left(histories.to(self.device), self.config.max_len)
                table, table_t = self._eval_table()  # (N+1, D), (D, N+1) or None
                _, last = self.net.encode(items, ev, gaps, table, lengths)  # (B, D)
                s = self.net.logits(self.net.head(last), table, table_t).float()  # (B, N+1)
                s[:, 0] = float("-inf")
                return s
        finally:
            self.net.train(was_training)

    def _eval_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The item table (N+1, D) and, on the CPU, its contiguous transpose (D, N+1) for the logits; rebuilt
        only when a parameter or side buffer changed (serving calls score once per homepage; rebuilding id +
        side embeddings for the whole catalog each time is waste)."""
        key = tuple((id(t), t._version, t.device) for t in [*self.net.parameters(), *self.net.buffers()])
        cached = getattr(self, "_table_cache", None)
        if cached is None or cached[0] != key:
            table = self.net.item_table()
            table_t = table.t().contiguous() if table.device.type == "cpu" else None
            cached = (key, table, table_t)
            self._table_cache = cached
        return cached[1], cached[2]

    def item_embeddings(self) -> torch.Tensor:
        """(N+1, D) item representations (id + side features) used for scoring; row 0 = padding."""
        with torch.no_grad():
            return self.net.item_table().detach().clone()

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        """Append ``n_new`` catalog items (ids n_items+1..n_items+n_new) never seen in training: zero id
        embedding, mean bias, side codes from ``side`` (a full (N_new+1,) ItemSide): scored by side
        features alone."""
        net, old = self.net, self.config.n_items + 1
        new = old + n_new
        dev = self.device
        w = torch.zeros(new, self.config.dim, device=dev)
        w[:old] = net.item_emb.weight.data
        net.item_emb = nn.Embedding(new, self.config.dim, padding_idx=0).to(dev)
        net.item_emb.weight.data.copy_(w)
        if net.bias is not None:
            b = torch.full((new,), float(net.bias.data[1:].mean()) if old > 1 else 0.0, device=dev)
            b[:old] = net.bias.data
            net.bias = nn.Parameter(b)
        for name in ("category", "brand", "price_bucket"):
            buf = getattr(net, name)
            if buf is not None:
                nb = torch.zeros(new, dtype=torch.long, device=dev)
                nb[:old] = buf
                setattr(net, name, nb)
        self.config.n_items += n_new
        self.n_items = self.config.n_items
        net.set_side(side)

    def fit(
        self,
        train,
        valid=None,
        *,
        time_budget_s: float | None = None,
        progress=None,
        progress_every: int = 50,
        **_,
    ) -> LSTMRecommender:
        """Train this model in place (``models.train``'s pretraining loop); ``train`` is a ``SequenceData`` or
        a list of id sequences, ``valid`` an optional ``models.train.EvalSet`` for early stopping."""
        from models.train import SequenceData, pretrain  # lazy: models.train imports this module

        data = train if isinstance(train, SequenceData) else SequenceData(list(train))
        return pretrain(
            self, data, valid, time_budget_s=time_budget_s, progress=progress, progress_every=progress_every
        )

    # --- training helpers (used by models.train) ---
    def train_loss(
        self,
        items: torch.Tensor,
        targets: torch.Tensor,
        lengths: torch.Tensor,
        event_types: torch.Tensor | None = None,
        gaps: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean next-item CE over real positions. All (B, T) left-aligned; targets 0 where no target.
        Fine-tuning slices arrive with the other targets already zeroed. ``log_q`` (N+1,) =
        log sampling probabilities, used above ``sampled_softmax_above`` items."""
        net, c = self.net, self.config
        id_keep = None
        if net.training and net.has_side and c.id_dropout > 0:
            id_keep = (torch.rand(c.n_items + 1, device=items.device) >= c.id_dropout).float()
        table = net.item_table(id_keep)  # (N+1, D)
        out, _ = net.encode(items, event_types, gaps, table, lengths)
        # targets in the same packed order as the LSTM outputs: only real positions get logits
        tgt_packed = pack_padded_sequence(
            targets, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        ).data  # (P,)
        keep = tgt_packed > 0
        h = net.head(out.data[keep])  # (M, D)
        y = tgt_packed[keep]  # (M,)
        if y.numel() == 0:
            return table.sum() * 0.0
        if c.n_items <= c.sampled_softmax_above or log_q is None:
            # full softmax over all N+1 rows (row 0 = padding: a zero vector, one harmless extra negative);
            # addmm and no column slicing keep the (M, N+1) logits to one contiguous buffer
            return _FullSoftmaxCE.apply(net.logits(h, table), y)
        return self._sampled_softmax(h, y, table, log_q)

    def _sampled_softmax(self, h, y, table, log_q):
        # shared negatives drawn from q; logQ correction subtracts log(S * q) from every logit
        neg = torch.multinomial(log_q.exp(), self.config.n_negatives, replacement=True)  # (S,)
        pos = (h * table[y]).sum(-1) - log_q[y]  # (M,)
        neg_l = h @ table[neg].t() - log_q[neg]  # (M, S)
        if self.net.bias is not None:
            pos = pos + self.net.bias[y]
            neg_l = neg_l + self.net.bias[neg]
        neg_l = neg_l.masked_fill(neg.unsqueeze(0) == y.unsqueeze(1), float("-inf"))  # accidental hits
        logits = torch.cat([pos.unsqueeze(1), neg_l], dim=1)  # (M, 1+S)
        return F.cross_entropy(logits, torch.zeros_like(y))

    def config_dict(self) -> dict:
        return asdict(self.config)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def flops_per_user(self) -> float:
        """Multiply-adds x 2 of the output layer, the bulk of scoring: D * (N+1) * 2."""
        return 2.0 * self.config.dim * (self.config.n_items + 1)

    def __repr__(self) -> str:
        return f"LSTMRecommender(n_items={self.n_items}, dim={self.config.dim}, params={self.n_params():,})"
