"""Building blocks of the neural sequence models: their shared config, the item table (id + side features,
step inputs, tied logits), padding-free rows and the full-softmax loss. See ``models.neural``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.base import EVENT_TYPES, N_EVENT_TYPES, Histories, ItemSide

PURCHASE = EVENT_TYPES["purchase"]  # what an absent event-type tensor means
SIDE = (("category", "n_categories"), ("brand", "n_brands"), ("price_bucket", "n_price_buckets"))


@dataclass
class NeuralConfig:
    # --- items and inputs ---
    n_items: int = 0  # dense ids 1..n_items, 0 = padding
    dim: int = 64  # embedding size
    max_len: int = 50  # most recent steps the model reads
    item_bias: bool = True  # a learned popularity offset per item in the logits
    n_event_types: int = N_EVENT_TYPES
    n_gap_buckets: int = 0  # 0 = no time-gap feature
    n_categories: int = 0  # 0 = no side feature of that kind (set from the ItemSide when given)
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
    progress_every: int = 50  # steps between progress reports within an epoch
    budget_clock: str = "wall"  # "cpu": count the time budget in CPU seconds per thread (shared machines)


class FullSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of (M, N+1) logits computed in the logits buffer itself: one max, one subtract, one
    exp, one sum, and the softmax it leaves behind is the gradient (softmax - one-hot). log_softmax + nll_loss
    would allocate and fill two more (M, N+1) buffers, which is most of a CPU training step's memory traffic.
    The logits must not be needed afterwards (they are overwritten)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = logits.gather(1, y.unsqueeze(1)).squeeze(1)  # (M,)
        top = logits.amax(1, keepdim=True)  # (M, 1)
        p = logits.sub_(top).exp_()  # (M, N+1) exp(logits - max), in place
        total = p.sum(1)  # (M,)
        loss = (top.squeeze(1) + total.log() - target).mean()
        ctx.save_for_backward(p, total, y)
        return loss

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        p, total, y = ctx.saved_tensors
        grad = p.div_(total.unsqueeze(1))  # softmax, in place
        grad.scatter_add_(1, y.unsqueeze(1), torch.full_like(total, -1.0).unsqueeze(1))
        return grad.mul_(g / p.shape[0]), None


def init_weights(m: nn.Module) -> None:
    """Small normal embeddings (padding row zero), Xavier linear layers with zero bias."""
    if isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02 if m.weight.shape[0] > 64 else 0.05)
        if m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()
    elif isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class ItemTable(nn.Module):
    """Item representations (id + side features), step inputs (+ event type + time gap) and the tied logits."""

    def __init__(self, c: NeuralConfig):
        super().__init__()
        n = c.n_items + 1
        self.config = c
        self.item_emb = nn.Embedding(n, c.dim, padding_idx=0)
        self.event_emb = nn.Embedding(c.n_event_types, c.dim, padding_idx=0)
        self.gap_emb = nn.Embedding(c.n_gap_buckets, c.dim, padding_idx=0) if c.n_gap_buckets else None
        self.cat_emb = nn.Embedding(c.n_categories, c.dim, padding_idx=0) if c.n_categories else None
        self.brand_emb = nn.Embedding(c.n_brands, c.dim, padding_idx=0) if c.n_brands else None
        self.price_emb = nn.Embedding(c.n_price_buckets, c.dim, padding_idx=0) if c.n_price_buckets else None
        # per-item side-feature codes (0 = unknown); buffers so they travel with the state dict
        for name, emb in zip(("category", "brand", "price_bucket"), self._side_embs()):
            self.register_buffer(name, torch.zeros(n, dtype=torch.long) if emb is not None else None)
        self.bias = nn.Parameter(torch.zeros(n)) if c.item_bias else None

    def _side_embs(self) -> tuple[nn.Embedding | None, ...]:
        return self.cat_emb, self.brand_emb, self.price_emb

    @property
    def has_side(self) -> bool:
        return any(e is not None for e in self._side_embs())

    def set_side(self, side: ItemSide | None) -> None:
        """Copy per-item side codes (N+1,) into the buffers (codes beyond the table → unknown)."""
        if side is None:
            return
        for (name, _), emb in zip(SIDE, self._side_embs()):
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
        for (name, _), emb in zip(SIDE, self._side_embs()):
            if emb is not None:
                v = emb(getattr(self, name))  # (N+1, D)
                out = v if out is None else out + v
        return out

    def table(self, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Every item's representation (N+1, D): id embedding (+ side features); ``id_keep`` (N+1,) zeroes
        the id part of some items (training with side features)."""
        e = self.item_emb.weight  # (N+1, D)
        if id_keep is not None:
            e = e * id_keep.unsqueeze(1)
        side = self.side_table()
        return e if side is None else e + side

    def embed_steps(
        self,
        items: torch.Tensor,
        event_types: torch.Tensor | None,
        gaps: torch.Tensor | None,
        table: torch.Tensor,
    ) -> torch.Tensor:
        """(B, T) ids → (B, T, D) step inputs: item + event type (+ time gap)."""
        c = self.config
        x = F.embedding(items, table)  # (B, T, D)
        ev = event_types if event_types is not None else torch.full_like(items, PURCHASE)
        x = x + self.event_emb(ev.clamp(0, c.n_event_types - 1))
        if self.gap_emb is not None and gaps is not None:
            x = x + self.gap_emb(gaps.clamp(0, c.n_gap_buckets - 1))
        return x

    def logits(
        self, h: torch.Tensor, table: torch.Tensor, table_t: torch.Tensor | None = None
    ) -> torch.Tensor:
        """h (M, D) against every item → (M, N+1); ``table_t``: the same table as a contiguous (D, N+1) copy,
        which makes the CPU's one-user matrix-vector product about 3x faster than the transposed view."""
        t = table.t() if table_t is None else table_t  # (D, N+1)
        if self.bias is not None:
            return torch.addmm(self.bias.to(h.dtype), h, t.to(h.dtype))  # (M, N+1)
        return h @ t.to(h.dtype)  # (M, N+1)

    def add_items(self, n_new: int, side: ItemSide | None) -> None:
        """Append ``n_new`` items: zero id embedding, mean bias, side codes from ``side``."""
        old, dim = self.item_emb.num_embeddings, self.item_emb.embedding_dim
        new, dev = old + n_new, self.item_emb.weight.device
        emb = nn.Embedding(new, dim, padding_idx=0).to(dev)
        with torch.no_grad():
            emb.weight.zero_()
            emb.weight[:old] = self.item_emb.weight
        self.item_emb = emb
        if self.bias is not None:
            b = torch.full((new,), float(self.bias.data[1:].mean()) if old > 1 else 0.0, device=dev)
            b[:old] = self.bias.data
            self.bias = nn.Parameter(b)
        for name, _ in SIDE:
            buf = getattr(self, name)
            if buf is not None:
                grown = torch.zeros(new, dtype=torch.long, device=dev)
                grown[:old] = buf
                setattr(self, name, grown)
        self.set_side(side)


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
