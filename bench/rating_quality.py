"""Rating prediction on the canonical MovieLens-100K folds: our heads beside the baselines.

For each fold, in one run: the three baselines fitted on uN.base, then our scorer trained
on uN.base with each head (everything else at the TrainConfig defaults) and evaluated on
uN.test with every uN.base rating as the user's history, exactly as `because evaluate`
does. Prints a table and appends one JSON line per run to bench/results/rating.jsonl.

    .venv/bin/python -m bench.rating_quality --data ../shared/data/ml-100k --folds 1
    .venv/bin/python -m bench.rating_quality --data ../shared/data/ml-100k --folds 1 2 3 4 5 \
        --heads mlp1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.record import append_result
from models.baselines import fit_baselines
from models.data.splits import split_canonical
from models.evaluate import predict_table
from models.metrics import mae, rmse
from models.train import TrainConfig, train, with_overrides


def run_fold(folder: Path, fold: int, heads: list[str], device: str) -> dict[str, dict]:
    """{model name: {rmse, mae, train_s}} for one canonical fold."""
    train_table, test_table = split_canonical(folder, fold)
    rows: dict[str, dict] = {}
    for baseline in fit_baselines(train_table, TrainConfig().scale):
        predicted = baseline.predict(test_table.users, test_table.items)
        rows[baseline.name] = {
            "rmse": rmse(predicted, test_table.ratings),
            "mae": mae(predicted, test_table.ratings),
        }
    for head in heads:
        config = with_overrides(TrainConfig(), head=head, device=device)
        result = train(train_table, config, progress=False)
        predicted, _ = predict_table(
            result.model, result.item_ids, config.max_context, train_table, test_table,
            result.device,
        )
        rows[f"attentive_{head}"] = {
            "rmse": rmse(predicted, test_table.ratings),
            "mae": mae(predicted, test_table.ratings),
            "train_s": round(result.seconds, 1),
            "best_epoch": result.best_epoch,
            "validation_rmse": round(result.validation_rmse, 4),
            "device": result.device,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--folds", type=int, nargs="+", default=[1])
    parser.add_argument("--heads", nargs="+", default=["dot", "mlp1", "mlp2"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    per_fold = {}
    for fold in args.folds:
        per_fold[fold] = run_fold(args.data, fold, args.heads, args.device)
        print(f"u{fold}: " + ", ".join(f"{k} {v['rmse']:.4f}" for k, v in per_fold[fold].items()))
    names = list(per_fold[args.folds[0]])
    mean = {
        name: {
            metric: float(np.mean([per_fold[f][name][metric] for f in args.folds]))
            for metric in ("rmse", "mae")
        }
        for name in names
    }
    print(f"\n| model | RMSE (mean of {len(args.folds)}) | MAE | per fold RMSE |")
    print("| --- | --- | --- | --- |")
    for name in names:
        folds = " ".join(f"{per_fold[f][name]['rmse']:.4f}" for f in args.folds)
        print(f"| {name} | {mean[name]['rmse']:.4f} | {mean[name]['mae']:.4f} | {folds} |")

    record = {
        "folds": args.folds,
        "train_config": TrainConfig().to_dict(),
        "per_fold": per_fold,
        "mean": mean,
    }
    print(f"appended to {append_result('rating', record)}")



if __name__ == "__main__":
    main()
