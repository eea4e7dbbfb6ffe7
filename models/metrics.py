"""The one evaluation path: rank each held-out target, then HR / NDCG / MRR from the ranks.

Both the trainer (early stopping) and ``core.insight.evaluate`` (the labelled protocols, the benchmark) use
these functions, so a validation figure and a benchmark figure are computed the same way.

From 0-based ranks r (one per user): HR@K = [r < K]; NDCG@K = [r < K] / log2(r + 2); MRR@K = [r < K] / (r + 1),
each averaged over users (one relevant item per user, so the ideal DCG is 1).

``rank_targets(model, eval_set, candidates=None, top=0, batch_size=1024, device=None) -> (ranks, tops)``
    Without ``candidates``: the target's rank among every catalog item except the user's own history
    (full ranking, history excluded); a target inside the history is masked, counted as a miss (rank
    ``n_items``). With ``candidates`` (U, C): its rank among those C items only (sampled negatives).
    ``top`` > 0 also returns each user's top-``top`` item ids (U, top) (for catalog coverage).
``metrics_from_ranks(ranks, ks=(10, 20)) -> {"hr@K", "ndcg@K", "mrr@K"}``
"""

from __future__ import annotations

import torch

from models.base import EvalSet, Recommender, mask_scores
from models.infer import pick_device


def hit_rate(ranks: torch.Tensor, k: int) -> float:
    """Share of users whose target ranks in the top ``k``."""
    return float((ranks < k).double().mean()) if len(ranks) else 0.0


def ndcg(ranks: torch.Tensor, k: int) -> float:
    """Mean of 1 / log2(rank + 2) over users whose target ranks in the top ``k`` (0 for the others)."""
    r = ranks.double()
    gain = torch.where(r < k, 1.0 / torch.log2(r + 2.0), torch.zeros((), dtype=torch.float64))
    return float(gain.mean()) if len(r) else 0.0


def mrr(ranks: torch.Tensor, k: int) -> float:
    """Mean of 1 / (rank + 1) over users whose target ranks in the top ``k`` (0 for the others)."""
    r = ranks.double()
    gain = torch.where(r < k, 1.0 / (r + 1.0), torch.zeros((), dtype=torch.float64))
    return float(gain.mean()) if len(r) else 0.0


def metrics_from_ranks(ranks: torch.Tensor, ks=(10, 20)) -> dict[str, float]:
    """HR@K, NDCG@K, MRR@K for each K in ``ks`` from 0-based ranks (U,)."""
    out = {}
    for k in ks:
        out.update({f"hr@{k}": hit_rate(ranks, k), f"ndcg@{k}": ndcg(ranks, k), f"mrr@{k}": mrr(ranks, k)})
    return out


def rank_targets(
    model: Recommender,
    eval_set: EvalSet,
    candidates: torch.Tensor | None = None,
    top: int = 0,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """See the module docstring."""
    dev = pick_device(device) if device is not None else model.device
    n, ranks, tops = len(eval_set), [], []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = slice(start, min(n, start + batch_size))
            h = eval_set.histories.rows(rows)
            s = model.score(h.to(dev))  # fp32: ranks count strictly higher scores, bf16 would make ties
            s = mask_scores(s.float(), h.items, None, exclude_history=candidates is None)  # (b, N+1)
            t = eval_set.targets[rows].to(s.device).long().unsqueeze(1)  # (b, 1)
            ts = s.gather(1, t)  # (b, 1)
            if candidates is None:
                r = (s > ts).sum(1)
                r = torch.where(torch.isneginf(ts.squeeze(1)), torch.full_like(r, model.n_items), r)
                if top:
                    tops.append(torch.topk(s, min(top, model.n_items), dim=1).indices.cpu())
            else:
                r = (s.gather(1, candidates[rows].to(s.device)) > ts).sum(1)
            ranks.append(r.cpu())
    out = torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.long)
    return out, (torch.cat(tops) if tops else None)


def validation_metrics(model: Recommender, valid: EvalSet, ks=(10,)) -> dict[str, float]:
    """HR@K and NDCG@K on ``valid`` under full ranking with the history excluded (early stopping, runs)."""
    ranks, _ = rank_targets(model, valid)
    return {key: v for key, v in metrics_from_ranks(ranks, ks).items() if not key.startswith("mrr")}
