"""Make the golden homepages: the first-run demo shop's model scores for 1,000 shoppers, and the homepages the
code of a given checkout builds from them (candidates, then the rules) under a rule set with every kind.

    # 1. the first-run demo shop (build_demo_shop defaults + the 3-minute model), once
    HS_DATA=/tmp/golden-shop HS_DB=/tmp/golden-shop/shop.duckdb python -m core first-run
    # 2. the code before the rule-kinds redesign
    git worktree add /tmp/before 8875e58
    # 3. the inputs, read from the shop, and the homepages that commit builds from them
    python tests/golden/make_golden.py inputs --data /tmp/golden-shop --code /tmp/before
    python tests/golden/make_golden.py homepages --code /tmp/before

The inputs are what a homepage is built from besides the rules: the catalog's attributes, the model's item
vectors E and biases b, each shopper's vector h (the LSTM's output for their history), attributes, category
mix and purchases. E and h are stored as int8 with a scale: a shopper's scores are then (h_q @ E_q^T) *
scale + b, where the matrix product of small integers is exact in float64 on any machine and BLAS, so the
test ranks exactly the same numbers everywhere. ``homepages`` runs the given checkout's own candidate
builder and ``rank_homepage`` on them in a child process and writes ``before.json.gz``;
``tests/integration/test_golden_homepages.py`` does the same with today's code and compares slot by slot.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
USERS, SEED, K, M = 1000, 11, 24, 500


def golden_rules(item_ids: list[str], promoted: list[str], sold_out: list[str]) -> dict:
    """Every rule kind, some scoped, one outside its window; in the JSON form every version reads (calibration
    as a diversity parameter, as before the redesign)."""
    rules = [
        {"rule_id": "pin-promo", "kind": "pin", "params": {"item_id": promoted[0], "slot": 1}},
        {
            "rule_id": "pin-north",
            "kind": "pin",
            "params": {"item_id": item_ids[7], "slot": 4},
            "scope": 'region == "north"',
        },
        {
            "rule_id": "pin-blocked",
            "kind": "pin",
            "params": {"item_id": promoted[1], "slot": 6},
            "scope": 'device == "desktop"',
        },
        {
            "rule_id": "pin-sold-out",
            "kind": "pin",
            "params": {"item_id": sold_out[0], "slot": 2},
            "scope": 'region == "east"',
        },
        {
            "rule_id": "block-items",
            "kind": "block",
            "params": {"condition": {"item_id": [item_ids[1], promoted[1]]}},
        },
        {"rule_id": "block-brand", "kind": "block", "params": {"condition": {"brand": ["Belor"]}}},
        {
            "rule_id": "block-later",
            "kind": "block",
            "params": {"condition": {"brand": ["Acvel"]}},
            "starts_at": "2027-01-01T00:00:00",
        },
        {"rule_id": "boost-new", "kind": "boost", "params": {"condition": {"new_days": 14}, "factor": 1.3}},
        {"rule_id": "bury-cheap", "kind": "bury", "params": {"condition": {"price_max": 5.0}, "factor": 0.7}},
        {
            "rule_id": "reserve-promo",
            "kind": "reserve",
            "params": {"condition": {"promoted": True}, "slots": 2},
        },
        {
            "rule_id": "reserve-rare",
            "kind": "reserve",
            "params": {"condition": {"item_id": item_ids[20:22]}, "slots": 3},
            "scope": 'segment == "new"',
        },
        {"rule_id": "cap-brand", "kind": "cap", "params": {"attribute": "brand", "max": 3}},
        {
            "rule_id": "dpp",
            "kind": "diversity",
            "params": {"method": "dpp", "theta": 0.7, "calibration": 0.3},
        },
        {
            "rule_id": "mmr-new-mobile",
            "kind": "diversity",
            "params": {"method": "mmr", "lambda": 0.6, "calibration": 0.5},
            "scope": 'device == "mobile" and segment == "new"',
        },
        {
            "rule_id": "fair-small",
            "kind": "fairness",
            "params": {"condition": {"seller_tier": "small"}, "p": 0.45, "alpha": 0.1},
        },
        {
            "rule_id": "fair-grocery",
            "kind": "fairness",
            "params": {"condition": {"category": "grocery"}, "p": 0.15, "alpha": 0.1},
            "scope": 'segment == "returning"',
        },
    ]
    return {"rule_set_id": "golden", "version": 1, "name": "every rule kind", "rules": rules}


def _child(code: Path, step: str, *args: str) -> None:
    """Run this script's ``step`` with ``code`` first on the path (that checkout's core)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run([sys.executable, __file__, step, *args], check=True, env=env, cwd=code)


def _quantize(x):
    """int8 values and the scale that gives them back: x ≈ q * scale (per row)."""
    import numpy as np

    scale = np.maximum(np.abs(x).max(axis=-1, keepdims=True), 1e-12) / 127.0
    return np.round(x / scale).astype(np.int8), scale.astype(np.float64)


def write_inputs(data: Path) -> None:
    """(child) The inputs for USERS shoppers of the shop in ``data``, read with the code on the path."""
    os.environ["HS_DATA"], os.environ["HS_DB"] = str(data), str(data / "shop.duckdb")
    import numpy as np
    import polars as pl
    import torch

    from core.ranking.homepage import prepare, shop_context
    from core.ranking.impact import sample_users
    from core.ranking.rules import RuleSet
    from models.lstm import compact_left

    ctx = shop_context()
    model, attrs = ctx.active.model, ctx.attrs
    users = sample_users(USERS, seed=SEED)
    rows = [ctx.by_user[u] for u in users]
    with torch.no_grad():  # the model's score() up to the logits: h = head(encode(history))
        net = model.net.eval()
        items, ev, gaps, lengths = compact_left(
            ctx.steps.histories(rows, max_len=model.max_len), model.max_len
        )
        table = net.item_table()
        h = net.head(net.encode(items, ev, gaps, table, lengths)[1]).double().numpy()  # (U, D)
        e = table.double().numpy()[1:]  # (N, D)
        b = net.bias.double().numpy()[1:] if net.bias is not None else np.zeros(len(e))
    hq, hs = _quantize(h)
    eq, es = _quantize(e.reshape(1, -1))  # one scale for the whole table
    promoted = attrs.filter(attrs["promoted"] & attrs["in_stock"])["item_id"].to_list()
    sold_out = attrs.filter(~attrs["in_stock"])["item_id"].to_list()
    rules = golden_rules(ctx.active.catalog.vocab.item_ids, promoted, sold_out)
    prepared, *_ = prepare(users, RuleSet.from_json(rules), with_history=False)
    np.savez_compressed(
        HERE / "inputs.npz", h=hq, h_scale=hs[:, 0], e=eq.reshape(e.shape), e_scale=es[0], bias=b
    )
    people = pl.DataFrame(
        {
            "user_id": [p.user.user_id for p in prepared],
            "attrs": [
                json.dumps({k: v for k, v in p.user.attrs.items() if k != "first_seen"}) for p in prepared
            ],
            "mix": [json.dumps(p.user.category_mix) for p in prepared],
            "purchased": [sorted(p.user.purchased) for p in prepared],
        }
    )
    people.write_parquet(HERE / "users.parquet", compression_level=22)
    cols = [
        "item_id",
        "category",
        "brand",
        "seller_id",
        "seller_tier",
        "price",
        "created_at",
        "in_stock",
        "promoted",
    ]
    attrs.select(cols).write_parquet(HERE / "catalog.parquet", compression_level=22)
    meta = {"now": prepared[0].now.isoformat(), "k": K, "m": M, "rule_set": rules}
    (HERE / "rules.json").write_text(json.dumps(meta, indent=1))


def load_inputs():
    """The stored inputs: (meta, catalog frame, users frame, scores (U, N+1) with column 0 = -inf, embeddings
    (N+1, D) with row 0 = padding)."""
    import numpy as np
    import polars as pl

    meta = json.loads((HERE / "rules.json").read_text())
    a = np.load(HERE / "inputs.npz")
    exact = a["h"].astype(np.float64) @ a["e"].astype(np.float64).T  # integers < 2^53: exact in any order
    scores = exact * a["h_scale"][:, None] * float(a["e_scale"].reshape(-1)[0]) + a["bias"][None, :]
    scores = np.concatenate([np.full((len(scores), 1), -np.inf), scores], axis=1)
    emb = a["e"].astype(np.float32) * np.float32(a["e_scale"].reshape(-1)[0])
    emb = np.concatenate([np.zeros((1, emb.shape[1]), dtype=np.float32), emb])
    return (
        meta,
        pl.read_parquet(HERE / "catalog.parquet"),
        pl.read_parquet(HERE / "users.parquet"),
        scores,
        emb,
    )


def golden_context(catalog, emb, now, table=None):
    """A stand-in for the shop snapshot with what the candidate builders read (both versions')."""
    import numpy as np

    from core.data.sequences import Vocab

    vocab = Vocab(catalog["item_id"].to_list())
    return SimpleNamespace(
        active=SimpleNamespace(catalog=SimpleNamespace(vocab=vocab)),
        attrs=catalog,
        table=table,
        in_stock=np.concatenate([[False], catalog["in_stock"].to_numpy().astype(bool)]),
        embeddings=emb,
        now=now,
    )


def write_homepages(out: Path) -> None:
    """(child) The homepages the code on the path builds from the stored inputs: per shopper, each slot's item
    and reason labels, and the conflicts' texts (with the old API when the code is the old one)."""
    from datetime import datetime

    from core.ranking import homepage, pipeline
    from core.ranking.rules import RuleSet

    meta, catalog, users, scores, emb = load_inputs()
    now, k, m = datetime.fromisoformat(meta["now"]), meta["k"], meta["m"]
    rule_set = RuleSet.from_json(meta["rule_set"])
    ctx = golden_context(catalog, emb, now)
    homepages = {}
    for n, u in enumerate(users.to_dicts()):
        attrs = json.loads(u["attrs"])
        user = pipeline.UserContext(u["user_id"], attrs, json.loads(u["mix"]), set(u["purchased"]))
        rules = rule_set.rules_for({"user_id": u["user_id"], **attrs}, now)
        purchased = ctx.active.catalog.vocab.encode(u["purchased"])
        extra = homepage._pool_indices(ctx, rules, now)
        c = homepage._candidates(ctx, scores[n], purchased, extra, m, rule_set.exclude_purchased)
        home = pipeline.rank_homepage(user, c, rule_set, k, now)
        homepages[u["user_id"]] = {
            "slots": [[s.item_id, list(s.reasons)] for s in home.slots],
            "conflicts": list(home.conflicts),
        }
    out.write_bytes(gzip.compress(json.dumps(homepages, sort_keys=True).encode(), mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["inputs", "homepages", "_inputs", "_homepages"])
    parser.add_argument("--data", type=Path, default=Path("/tmp/golden-shop"))
    parser.add_argument("--code", type=Path, default=Path("/tmp/before"), help="the checkout whose code runs")
    parser.add_argument("--out", type=Path, default=HERE / "before.json.gz")
    args = parser.parse_args()
    if args.step == "inputs":
        _child(args.code.resolve(), "_inputs", "--data", str(args.data.resolve()))
    elif args.step == "homepages":
        _child(args.code.resolve(), "_homepages", "--out", str(args.out.resolve()))
    elif args.step == "_inputs":
        write_inputs(args.data)
    else:
        write_homepages(args.out)


if __name__ == "__main__":
    main()
