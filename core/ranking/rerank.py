"""Re-ranking algorithms on candidate arrays: MMR, fast greedy DPP MAP, FA*IR, caps, calibration.

References: Carbonell & Goldstein 1998 (MMR); Chen, Zhang & Zhou, "Fast Greedy MAP Inference for
Determinantal Point Process to Improve Recommendation Diversity", NeurIPS 2018; Zehlike et al.,
"FA*IR: A Fair Top-k Ranking Algorithm", CIKM 2017; Steck, "Calibrated Recommendations", RecSys 2018.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy.stats import binom


def _unit(emb: np.ndarray) -> np.ndarray:
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def mmr(relevance: np.ndarray, embeddings: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: argmax λ·rel − (1−λ)·max cosine similarity to the chosen ones."""
    n = len(relevance)
    k = min(k, n)
    if k == 0:
        return []
    sim = _unit(embeddings) @ _unit(embeddings).T  # (M, M)
    chosen = [int(np.argmax(relevance))]
    max_sim = sim[chosen[0]].copy()
    taken = np.zeros(n, bool)
    taken[chosen[0]] = True
    for _ in range(k - 1):
        gain = lam * relevance - (1 - lam) * max_sim
        gain[taken] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        taken[j] = True
        max_sim = np.maximum(max_sim, sim[j])
    return chosen


def dpp_kernel(relevance: np.ndarray, embeddings: np.ndarray, theta: float) -> np.ndarray:
    """L = diag(exp(α r)) S diag(exp(α r)), α = θ / (2(1−θ)): θ trades relevance against diversity."""
    theta = min(max(theta, 0.0), 0.999)
    alpha = theta / (2 * (1 - theta))
    q = np.exp(alpha * (relevance - relevance.max()))
    u = _unit(embeddings)
    s = u @ u.T
    return q[:, None] * s * q[None, :]


def dpp_greedy(
    relevance: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    theta: float = 0.7,
    kernel: np.ndarray | None = None,
    eps: float = 1e-10,
) -> list[int]:
    """Fast greedy MAP inference (Chen et al. 2018, Algorithm 1): incremental Cholesky, O(M k²)."""
    L = dpp_kernel(relevance, embeddings, theta) if kernel is None else kernel
    n = L.shape[0]
    k = min(k, n)
    cis = np.zeros((k, n))
    d2 = np.diag(L).astype(float).copy()
    chosen = []
    j = int(np.argmax(d2))
    while len(chosen) < k:
        chosen.append(j)
        t = len(chosen) - 1
        if d2[j] < eps:
            break
        e = (L[j, :] - cis[:t, j] @ cis[:t, :]) / np.sqrt(d2[j])
        cis[t, :] = e
        d2 = d2 - e**2
        d2[chosen] = -np.inf
        j = int(np.argmax(d2))
    if len(chosen) < k:  # the kernel's rank is exhausted: fill by relevance
        rest = [i for i in np.argsort(-np.diag(L)) if i not in chosen]
        chosen += rest[: k - len(chosen)]
    return chosen


def dpp_bruteforce(L: np.ndarray, k: int) -> list[int]:
    """The k-subset of largest log-det, by enumeration (tests only)."""
    best, best_set = -np.inf, None
    for subset in itertools.combinations(range(L.shape[0]), k):
        sign, logdet = np.linalg.slogdet(L[np.ix_(subset, subset)])
        if sign > 0 and logdet > best:
            best, best_set = logdet, subset
    return list(best_set or [])


def fair_min_counts(k: int, p: float, alpha: float) -> np.ndarray:
    """FA*IR's m(i), i = 1..k: the fewest protected items a fair prefix of length i may hold,
    the α-quantile of Binomial(i, p) (before the multiple-testing adjustment)."""
    return np.array(_fair_min_counts(int(k), float(p), float(alpha)), dtype=int)


@functools.lru_cache(maxsize=256)
def _fair_min_counts(k: int, p: float, alpha: float) -> tuple[int, ...]:
    # scipy's ppf costs ~0.5 ms a call: the same (k, p, α) table serves every homepage of a rule set
    return tuple(binom.ppf(alpha, np.arange(1, k + 1), p).astype(int).tolist())


def _heads(order: list[int], protected: np.ndarray, k: int) -> tuple[list[int], list[int], dict[int, int]]:
    """The first k protected and the first k other items of ``order``, and their positions in it: k slots
    pick at most k items from either side, so the heads are all FA*IR's walk reads."""
    prot: list[int] = []
    other: list[int] = []
    rank: dict[int, int] = {}
    for position, i in enumerate(order):
        side = prot if protected[i] else other
        if len(side) < k:
            side.append(i)
            rank[i] = position
        elif len(prot) >= k and len(other) >= k:
            break
    return prot, other, rank


def fair_rerank(
    order: list[int], protected: np.ndarray, k: int, p: float, alpha: float
) -> tuple[list[int], list[int], tuple[int, int, int] | None]:
    """FA*IR greedy: walk the slots; when the prefix is short of m(i) take the best remaining
    protected item, else the best overall. Returns (list, swapped-in items, shortfall or None), the
    shortfall being the first prefix the pool could not make fair: (protected placed, prefix length, m(i))."""
    need = fair_min_counts(k, p, alpha)
    prot, other, rank = _heads(order, protected, k)
    out, swaps, shortfall = [], [], None
    n_prot = 0
    for slot in range(min(k, len(order))):
        if n_prot < need[slot] and prot:
            pick = prot.pop(0)
            if other and rank[other[0]] < rank[pick]:
                swaps.append(pick)
        elif prot and (not other or rank[prot[0]] < rank[other[0]]):
            pick = prot.pop(0)
        elif other:
            pick = other.pop(0)
        else:
            pick = prot.pop(0)
        n_prot += bool(protected[pick])
        out.append(pick)
        if n_prot < need[slot] and shortfall is None:
            shortfall = (n_prot, slot + 1, int(need[slot]))
    return out, swaps, shortfall


def apply_caps(order: list[int], values: dict[str, np.ndarray], caps: dict[str, int], k: int) -> list[int]:
    """Keep the order, skipping items that would exceed a per-attribute cap in the first k."""
    if not caps:
        return list(order)
    counts: dict[tuple[str, object], int] = {}
    kept, skipped = [], []
    for i in order:
        if len(kept) >= k:
            skipped.append(i)
            continue
        keys = [(a, values[a][i]) for a in caps]
        if any(counts.get(key, 0) >= caps[key[0]] for key in keys):
            skipped.append(i)
            continue
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        kept.append(i)
    return kept + skipped


def calibration_kl(p: dict[str, float], q: dict[str, float], smooth: float = 0.01) -> float:
    """KL(p || q̃) with q̃ = (1−a) q + a p, Steck's smoothing so the divergence stays finite."""
    total = 0.0
    for c, pc in p.items():
        if pc <= 0:
            continue
        qc = (1 - smooth) * q.get(c, 0.0) + smooth * pc
        total += pc * np.log(pc / qc)
    return float(total)


def calibrate(
    order: list[int],
    relevance: np.ndarray,
    categories: np.ndarray,
    target: dict[str, float],
    k: int,
    lam: float,
    every_category: bool = False,
    smooth: float = 0.01,
    keep_order: bool = False,
) -> list[int]:
    """Steck 2018: greedily maximise (1−λ)·Σ relevance − λ·KL(target || list's category mix),
    relevance scaled to [0, 1] over the pool. The pool is the best 4k items; ``every_category`` adds the best
    k of every target category, so a category the model ranks low can still get its share. Adding a
    candidate changes one category's share, so its KL is the list's KL plus that category's change:
    O(categories) per step, not O(pool × categories).

    The top k come in the greedy's order (every prefix follows the mix), or with ``keep_order`` in the order
    ``order`` gave them: Steck's objective is one of the k items as a set, so the same items keep their mix
    and their value while the most relevant stay first."""
    if not target or lam <= 0 or not order:
        return list(order)
    pool = np.array(_calibration_pool(order, categories, target, k) if every_category else order[: 4 * k])
    names = sorted(set(categories[pool].tolist()) | set(target))
    position = {c: i for i, c in enumerate(names)}
    code = np.array([position[c] for c in categories[pool].tolist()])  # (P,)
    p = np.array([target.get(c, 0.0) for c in names])
    p = p / max(p.sum(), 1e-12)
    pos = p > 0
    rel = relevance[pool] / max(float(relevance[pool].max()), 1e-300)
    counts = np.zeros(len(names))
    avail = np.ones(len(pool), bool)
    picked, rel_sum = [], 0.0
    for step in range(min(k, len(pool))):
        n = step + 1
        q_without = np.maximum((1 - smooth) * counts / n + smooth * p, 1e-300)  # (C,) others' shares
        q_with = q_without + (1 - smooth) / n  # (C,) the share of the candidate's own category
        kl_without = float(np.sum(p[pos] * np.log(p[pos] / q_without[pos])))
        change = np.zeros(len(names))
        change[pos] = p[pos] * (np.log(q_without[pos]) - np.log(q_with[pos]))
        kl = kl_without + change[code]  # (P,)
        gain = (1 - lam) * (rel_sum + rel) - lam * kl
        gain[~avail] = -np.inf
        j = int(np.argmax(gain))
        picked.append(j)
        avail[j] = False
        counts[code[j]] += 1
        rel_sum += rel[j]
    # the pool is in ``order``'s order, so sorting the picks by their place in it keeps that order
    chosen = [int(pool[j]) for j in (sorted(picked) if keep_order else picked)]
    taken = set(chosen)
    return chosen + [i for i in order if i not in taken]


def _calibration_pool(
    order: list[int], categories: np.ndarray, target: dict[str, float], k: int
) -> list[int]:
    """The best ``4k`` of ``order``, then the best ``k`` of each target category not yet among them, in order."""
    head = set(order[: 4 * k])
    room = {c: k - sum(1 for i in head if categories[i] == c) for c in target}
    extra = set()
    for i in order[4 * k :]:
        c = categories[i]
        if room.get(c, 0) > 0:
            extra.add(i)
            room[c] -= 1
    return [i for i in order if i in head or i in extra]


def intra_list_diversity(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine distance of the list's items."""
    n = len(embeddings)
    if n < 2:
        return 0.0
    u = _unit(embeddings)
    sim = u @ u.T
    return float((n * n - sim.sum()) / (n * (n - 1)))
