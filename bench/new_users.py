"""New users without retraining on MovieLens-100K: our rating model beside fold-in peers.

Protocol (`new_user_split` in models/data/splits.py): 20% of the users with >= 20 ratings
(`u.data`) are left out of training; the first half of each one's ratings by time is
revealed, the rest is to predict. Ours is trained once without them and builds each new
user from the revealed history alone, exactly as the service does. Peers without
retraining (`bench/fold_in.py`) freeze a Surprise model fitted without the new users and
fold the user in from the revealed ratings: the user bias over BaselineOnly, item-kNN over
KNNBaseline's similarities, and SVD's frozen item factors with the user's factors and bias
by ridge regression (its ridge strength chosen on new users carved out of the training
users, never on the test). Peers that retrain: Surprise SVD and BaselineOnly fitted on the
training ratings plus the revealed ones. Prints a table and our ratio to the best
no-retraining peer; appends one JSON line to bench/results/new_users.jsonl.

    .venv/bin/python -m bench.new_users --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.fold_in import (
    FrozenItems,
    predict_bias_fold_in,
    predict_knn_fold_in,
    predict_svd_fold_in,
)
from bench.record import append_result, provenance
from bench.surprise_peers import SEED, predict_rows, to_trainset
from models.data.encoded import EncodedRatings
from models.data.readers import MOVIELENS_SCALE, read_items, read_ratings
from models.data.splits import NewUserSplit, new_user_split
from models.data.table import Catalogue, RatingScale, RatingTable
from models.evaluation.rating import mae, predict_table, rmse
from models.training.configs import given
from models.training.rating import RatingTrainConfig, train_rating_model

BASELINE_REG_USERS = 15.0  # Surprise's ALS baseline default, kept for the folded-in b_u
KNN_NEIGHBOURS = 40  # KNNBaseline's default k
RIDGE_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
NO_RETRAIN = ("bias_fold_in", "item_knn_fold_in", "svd_fold_in")


def frozen_items(algo: Any, factors: bool = False, similarity: bool = False) -> FrozenItems:
    """The item side of a fitted Surprise model, in its inner item order."""
    trainset = algo.trainset
    return FrozenItems(
        index={trainset.to_raw_iid(i): i for i in trainset.all_items()},
        mean=float(trainset.global_mean),
        item_bias=np.asarray(algo.bi, np.float64),
        factors=np.asarray(algo.qi, np.float64) if factors else None,
        similarity=np.asarray(algo.sim, np.float64) if similarity else None,
    )


def choose_ridge(train_table: RatingTable, scale: RatingScale, seed: int) -> tuple[float, dict]:
    """The ridge strength of SVD fold-in with the lowest RMSE on validation new users drawn
    from the training users only; returns (best, {reg: rmse})."""
    from surprise import SVD

    val = new_user_split(train_table, fraction=0.2, min_ratings=20, seed=seed + 1)
    frozen = frozen_items(SVD(random_state=SEED).fit(to_trainset(val.train, scale)), factors=True)
    grid = {
        reg: rmse(predict_svd_fold_in(frozen, val.revealed, val.hidden, reg, scale),
                  val.hidden.ratings)
        for reg in RIDGE_GRID
    }
    return min(grid, key=grid.get), grid


def peer_predictions(
    split: NewUserSplit, scale: RatingScale, ridge: float
) -> dict[str, np.ndarray]:
    """{peer: predictions of split.hidden}, the fold-in peers first."""
    from surprise import SVD, BaselineOnly, KNNBaseline

    trainset = to_trainset(split.train, scale)
    bias = frozen_items(BaselineOnly(verbose=False).fit(trainset))
    knn = KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False},
                      verbose=False).fit(trainset)
    svd = frozen_items(SVD(random_state=SEED).fit(trainset), factors=True)
    revealed, hidden = split.revealed, split.hidden
    out = {
        "bias_fold_in": predict_bias_fold_in(bias, revealed, hidden, BASELINE_REG_USERS, scale),
        "item_knn_fold_in": predict_knn_fold_in(
            frozen_items(knn, similarity=True), revealed, hidden, BASELINE_REG_USERS,
            KNN_NEIGHBOURS, scale,
        ),
        "svd_fold_in": predict_svd_fold_in(svd, revealed, hidden, ridge, scale),
    }
    with_revealed = to_trainset(RatingTable.concat([split.train, revealed]), scale)
    out["svd_retrained"] = predict_rows(SVD(random_state=SEED).fit(with_revealed), hidden)
    out["baseline_only_retrained"] = predict_rows(
        BaselineOnly(verbose=False).fit(with_revealed), hidden
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--head", default="dot")
    parser.add_argument("--seed", type=int, default=0, help="which users are new")
    parser.add_argument("--no-genres", action="store_true",
                        help="train without the items' genres (no attribute offset)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run_provenance = provenance()
    started = time.perf_counter()
    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    split = new_user_split(table, fraction=0.2, min_ratings=20, seed=args.seed)
    base = RatingTrainConfig()
    config = given(base, model=given(base.model, head=args.head), device=args.device)
    scale = MOVIELENS_SCALE
    truth = split.hidden.ratings

    ridge, ridge_grid = choose_ridge(split.train, scale, args.seed)
    predictions = peer_predictions(split, scale, ridge)
    data = EncodedRatings.encode(split.train)
    catalogue = Catalogue.empty() if args.no_genres else read_items(args.data / "u.item")
    result = train_rating_model(data, scale, config, progress=False,
                                genres=catalogue.genres_of(data.item_ids.ids))
    ours, unknown = predict_table(
        result.model, data.item_ids, split.revealed, split.hidden, result.device,
    )
    name = f"attentive_{args.head}"
    # The same model without its session offset (it weighs the revealed ratings given
    # just before each hidden one).
    timed = result.model.config
    result.model.config = replace(timed, session_seconds=None, session_shrink=None)
    timeless, _ = predict_table(
        result.model, data.item_ids, split.revealed, split.hidden, result.device,
    )
    result.model.config = timed
    predictions = {name: ours, f"{name}_without_session": timeless, **predictions}
    rows = {k: {"rmse": rmse(p, truth), "mae": mae(p, truth)} for k, p in predictions.items()}
    best_peer = min(NO_RETRAIN, key=lambda k: rows[k]["rmse"])
    ratio = rows[name]["rmse"] / rows[best_peer]["rmse"]

    n_users = len(np.unique(split.hidden.users))
    print(f"{n_users} new users, {len(split.revealed)} revealed ratings, "
          f"{len(truth)} to predict; SVD fold-in ridge {ridge} (validation {ridge_grid})")
    print("| model | retrains | RMSE | MAE |\n| --- | --- | --- | --- |")
    for k, row in rows.items():
        retrains = "yes" if k.endswith("_retrained") else "no"
        print(f"| {k} | {retrains} | {row['rmse']:.4f} | {row['mae']:.4f} |")
    print(f"ours / best no-retraining peer ({best_peer}): {ratio:.4f}")
    seconds = round(time.perf_counter() - started, 1)
    print(f"wall time {seconds} s")

    record = {
        "protocol": {"fraction": 0.2, "min_ratings": 20, "seed": args.seed,
                     "new_users": n_users, "revealed": len(split.revealed),
                     "hidden": len(truth), "unknown_items": unknown},
        "results": rows,
        "best_no_retraining_peer": best_peer,
        "ratio_to_best_no_retraining_peer": ratio,
        "svd_fold_in_ridge": ridge,
        "svd_fold_in_ridge_validation": {str(k): v for k, v in ridge_grid.items()},
        "train_config": config.to_dict(),
        "attentive_train_s": round(result.seconds, 1),
        "attentive_best_epoch": result.best_epoch,
        "history_offset_shrink": result.model.config.history_offset_shrink,
        "attribute_ridge": result.model.config.attribute_ridge,
        "departure_shrink": result.model.config.departure_shrink,
        "departure_validation_rmse": result.departure_rmse,
        "session_seconds": result.model.config.session_seconds,
        "session_shrink": result.model.config.session_shrink,
        "session_validation_rmse": result.session_rmse,
        "genres": not args.no_genres,
        "wall_s": seconds,
    }
    print(f"appended to {append_result('new_users', record, run_provenance)}")


if __name__ == "__main__":
    main()
