"""Rating prediction on the canonical MovieLens-100K folds: our heads beside the peers.

For each fold, in one run: our own baselines and Surprise's BaselineOnly, SVD, SVD++ and
KNNBaseline (`bench/surprise_peers.py`) fitted on uN.base, then our rating model trained on
uN.base with each head (everything else at the RatingTrainConfig defaults, the items'
genres from u.item as `because train` reads them; `--no-genres`: without) and evaluated on
uN.test with every uN.base rating as the user's history, exactly as `because evaluate`
does. `--heads` run on the first fold listed, `--fold-heads` on every fold (training all
three heads on five folds takes about an hour on two cores). Prints a table for the first
fold and one of the means over the folds, and appends one JSON line per run to
bench/results/rating.jsonl. Needs the bench extra: `pip install -e .[bench]`.

    .venv/bin/python -m bench.rating_quality --data ../shared/data/ml-100k \
        --folds 1 2 3 4 5 --heads dot mlp1 mlp2 --fold-heads dot
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.record import append_result, provenance
from bench.surprise_peers import predict_rows, surprise_peers, to_trainset
from models.data.encoded import EncodedRatings
from models.data.readers import MOVIELENS_SCALE, read_items
from models.data.splits import split_canonical
from models.data.table import Catalogue
from models.evaluation.rating import mae, predict_table, rmse
from models.evaluation.rating_baselines import fit_baselines
from models.training.configs import given
from models.training.rating import RatingTrainConfig, train_rating_model


def run_fold(folder: Path, fold: int, heads: list[str], device: str, genres: bool = True
             ) -> dict[str, dict]:
    """{model name: {rmse, mae, train_s, ...}} for one canonical fold."""
    train_table, test_table = split_canonical(folder, fold)
    catalogue = read_items(folder / "u.item") if genres else Catalogue.empty()
    scale = MOVIELENS_SCALE
    rows: dict[str, dict] = {}
    for baseline in fit_baselines(train_table, scale):
        predicted = baseline.predict(test_table.users, test_table.items)
        rows[baseline.name] = _scores(predicted, test_table.ratings)
    trainset = to_trainset(train_table, scale)
    for name, make in surprise_peers().items():
        started = time.perf_counter()
        algo = make().fit(trainset)
        predicted = predict_rows(algo, test_table)
        rows[name] = {**_scores(predicted, test_table.ratings),
                      "train_s": round(time.perf_counter() - started, 1)}
        print(f"  u{fold} {name}: {rows[name]['rmse']:.4f} ({rows[name]['train_s']} s)",
              flush=True)
    for head in heads:
        base = RatingTrainConfig()
        config = given(base, model=given(base.model, head=head), device=device)
        data = EncodedRatings.encode(train_table)
        result = train_rating_model(
            data, scale, config, progress=False,
            genres=catalogue.genres_of(data.item_ids.ids))
        predicted, _ = predict_table(
            result.model, data.item_ids, train_table, test_table, result.device,
        )
        rows[f"attentive_{head}"] = {
            **_scores(predicted, test_table.ratings),
            "train_s": round(result.seconds, 1),
            "best_epoch": result.best_epoch,
            "validation_rmse": round(result.validation_rmse, 4),
            "history_offset_shrink": result.model.config.history_offset_shrink,
            "attribute_ridge": result.model.config.attribute_ridge,
            "attributes": list(result.model.config.attributes),
            "offset_validation_rmse": result.offset_rmse,
            "departure_shrink": result.model.config.departure_shrink,
            "departure_validation_rmse": result.departure_rmse,
            "session_seconds": result.model.config.session_seconds,
            "session_shrink": result.model.config.session_shrink,
            "session_validation_rmse": result.session_rmse,
            "device": result.device,
        }
        # The same model without its session offset: what it does without the test
        # ratings' times (the literature's models use none).
        timeless = replace(result.model.config, session_seconds=None, session_shrink=None)
        kept, result.model.config = result.model.config, timeless
        predicted, _ = predict_table(
            result.model, data.item_ids, train_table, test_table, result.device,
        )
        result.model.config = kept
        rows[f"attentive_{head}_without_session"] = _scores(predicted, test_table.ratings)
        print(f"  u{fold} attentive_{head}: {rows[f'attentive_{head}']['rmse']:.4f} "
              f"({rows[f'attentive_{head}']['train_s']} s)", flush=True)
    return rows


def mean_over_folds(per_fold: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """{model: {rmse, mae, folds}} for the models that ran on every fold."""
    folds = list(per_fold)
    everywhere = [name for name in per_fold[folds[0]] if all(name in per_fold[f] for f in folds)]
    return {
        name: {
            **{m: float(np.mean([per_fold[f][name][m] for f in folds])) for m in ("rmse", "mae")},
            "per_fold_rmse": [per_fold[f][name]["rmse"] for f in folds],
        }
        for name in everywhere
    }


def _scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"rmse": rmse(predicted, truth), "mae": mae(predicted, truth)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--folds", type=int, nargs="+", default=[1])
    parser.add_argument("--heads", nargs="+", default=["dot", "mlp1", "mlp2"],
                        help="heads trained on the first fold listed")
    parser.add_argument("--fold-heads", nargs="*", default=["dot"],
                        help="heads trained on every fold")
    parser.add_argument("--no-genres", action="store_true",
                        help="train without the items' genres (no attribute offset)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run_provenance = provenance()
    started = time.perf_counter()
    per_fold: dict[int, dict[str, dict]] = {}
    for position, fold in enumerate(args.folds):
        heads = args.heads if position == 0 else []
        heads = heads + [h for h in args.fold_heads if h not in heads]
        per_fold[fold] = run_fold(args.data, fold, heads, args.device, not args.no_genres)
    mean = mean_over_folds(per_fold)

    first = args.folds[0]
    print(f"\nu{first}:\n| model | RMSE | MAE |\n| --- | --- | --- |")
    for name, row in per_fold[first].items():
        print(f"| {name} | {row['rmse']:.4f} | {row['mae']:.4f} |")
    if len(args.folds) > 1:
        print(f"\nmean over u{' u'.join(map(str, args.folds))} (models run on every fold):")
        print("| model | RMSE | MAE | per fold RMSE |\n| --- | --- | --- | --- |")
        for name, row in mean.items():
            folds = " ".join(f"{r:.4f}" for r in row["per_fold_rmse"])
            print(f"| {name} | {row['rmse']:.4f} | {row['mae']:.4f} | {folds} |")
    seconds = round(time.perf_counter() - started, 1)
    print(f"wall time {seconds} s")

    record = {
        "folds": args.folds,
        "heads_first_fold": args.heads,
        "heads_every_fold": args.fold_heads,
        "genres": not args.no_genres,
        "train_config": RatingTrainConfig().to_dict(),
        "per_fold": per_fold,
        "mean": mean,
        "wall_s": seconds,
    }
    print(f"appended to {append_result('rating', record, run_provenance)}")


if __name__ == "__main__":
    main()
