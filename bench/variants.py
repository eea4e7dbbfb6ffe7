"""One neural model on a sequence file with some of its config changed: the validation curve, per epoch.

How a default in ``models.registry.sized_config`` or a model's config was chosen (issue 15): the same split
as ``python -m core bench`` (leave-one-out, ``core.insight.evaluate.split_file``), the model's defaults sized
from the data, then the fields given as JSON changed, trained for at most ``--budget-s`` seconds, early-stopped
on validation NDCG@10. Only validation is printed; the test item is not scored. Two variants side by side on
the two cores: ``--threads 1`` each.

    .venv/bin/python bench/variants.py --data ../shared/data/benchmarks/amazon-beauty.txt --model transformer \
        --set '{"dropout": 0.3, "max_epochs": 40}' [--budget-s 900] [--threads 1] [--save DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.insight.evaluate import read_sequence_file, split_file  # noqa: E402
from models.base import Progress  # noqa: E402
from models.registry import NEURAL, build, save_model, sized_config  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a sequence file: `user_id item_id item_id …` per line")
    p.add_argument("--model", choices=sorted(NEURAL), default="transformer")
    p.add_argument("--set", default="{}", help="config fields to change, as a JSON object")
    p.add_argument("--budget-s", type=float, default=900.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save", help="save the trained model in this folder (models.registry.save_model)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = read_sequence_file(args.data)
    split = split_file(data)
    config = dataclasses.replace(sized_config(NEURAL[args.model], split.train), **json.loads(args.set))
    print(config, flush=True)
    model = build(args.model, data.n_items, config=config)
    started = time.perf_counter()

    def epoch_done(p: Progress) -> None:
        if p.metrics:  # the report at an epoch's end carries its validation figures
            m = p.metrics
            print(f"epoch {p.epoch + 1}  {time.perf_counter() - started:.0f} s  loss {m['loss']:.3f}  "
                  f"valid NDCG@10 {m.get('ndcg@10', 0):.4f}  HR@10 {m.get('hr@10', 0):.4f}", flush=True)  # fmt: skip

    model.fit(split.train, split.valid, time_budget_s=args.budget_s, progress=epoch_done)
    best = max(model.history, key=lambda epoch: epoch["ndcg@10"])  # the weights fit restored
    print(
        f"best: valid NDCG@10 {best['ndcg@10']:.4f}  HR@10 {best['hr@10']:.4f}  after {model.train_seconds:.0f} s"
    )
    if args.save:
        save_model(model, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
