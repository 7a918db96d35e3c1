"""Does the rating model's attention single out the item that matters? u1, both user biases.

For each variant, the rating model is trained on GroupLens's u1.base with u.item's
genres; its u1.test RMSE is measured, and, for 200 (user, unrated item) pairs (40 u1
users, 5 items each, seed 0), whether removing the history item with the most attention
moves the predicted rating more than removing a random other one (exact leave-one-out,
as `/v1/users/{id}/explanations`).
Variants: the paper's user bias (the plain shrunk mean of the context's residuals), the
default (weighted by the attention, and the attention leaning toward ratings far from the
item's usual one), the default without that lean, and the default with a learned
attention offset per rating level (rating-aware keys).

    .venv/bin/python -m bench.attention_lever --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.record import append_result
from models.data.encoded import EncodedRatings
from models.data.readers import MOVIELENS_SCALE, read_items
from models.data.splits import split_canonical
from models.data.table import IdMap, RatingTable
from models.evaluation.rating import histories_by_user, predict_table, rmse
from models.inference.contributions import rating_contributions
from models.networks.rating import RatingModel
from models.training.rating import RatingTrainConfig, train_rating_model

VARIANTS = {
    "plain_user_bias": {"attentive_bias": False},
    "attentive_user_bias": {"attentive_bias": True},
    "no_opinion_lean": {"attentive_bias": True, "opinion_attention": 0.0},
    "rating_keys": {"attentive_bias": True, "rating_keys": True},
}


def lever(
    model: RatingModel, train: RatingTable, item_ids: IdMap, users: int = 40, per_user: int = 5
) -> float:
    """Share of pairs where the most attended item is the bigger lever."""
    histories = histories_by_user(train, item_ids)
    rng = np.random.default_rng(0)
    wins = []
    for user in rng.choice(sorted(histories), users, replace=False):
        history = histories[str(user)].newest(model.config.max_context)
        unrated = np.setdiff1d(np.arange(len(item_ids)), history.items)
        targets = rng.choice(unrated, per_user, replace=False)
        found = rating_contributions(
            model, history, targets, np.arange(len(history)), torch.device("cpu")
        )
        for row in range(per_user):
            top = int(np.argmax(found.attention[row]))
            other = int(rng.choice(np.delete(np.arange(len(history)), top)))
            wins.append(abs(found.contribution[row, top]) > abs(found.contribution[row, other]))
    return float(np.mean(wins))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=VARIANTS)
    args = parser.parse_args()
    train, test = split_canonical(args.data, 1)
    data = EncodedRatings.encode(train)
    genres = read_items(args.data / "u.item").genres_of(data.item_ids.ids)
    base = RatingTrainConfig()
    results = {}
    for name in args.variants:
        config = replace(base, model=replace(base.model, **VARIANTS[name]))
        result = train_rating_model(data, MOVIELENS_SCALE, config, progress=False,
                                    genres=genres)
        predicted, _ = predict_table(result.model, data.item_ids, train, test)
        results[name] = {"u1_rmse": rmse(predicted, test.ratings),
                         "top_attention_bigger_lever": lever(result.model, train, data.item_ids),
                         "best_epoch": result.best_epoch}
        print(name, results[name], flush=True)
    record = {"results": results, "genres": "u.item"}
    print(f"appended to {append_result('attention_lever', record)}")


if __name__ == "__main__":
    main()
