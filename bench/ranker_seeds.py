"""Issue 16's ranking baseline: our ranker over training seeds, beside SASRec trained with a
whole-catalogue softmax (Klenitskiy & Vasilev, 2023) over the same seeds, and EASE.

Protocol as bench/ranking_quality.py, on MovieLens-100K: each user's last 10 ratings by
time held out, every item the user has not rated ranked, NDCG@10 and Recall@10. Ours:
`build_artifact` on the past with the `fast` recipe (what `because train` trains by
default; `--preset quality` for the longer one), the seed of both models changed, then,
per user, what `/v1/rank` without candidates runs (`Predictor.run`, order "ranking",
every unrated item), and the same ranker with its item-to-item term (EASE's weights,
Steck 2019) removed, to show what the term adds. SASRec (bench/sasrec_peer.py): its epoch
count chosen on the past's own last 10, then refitted on the whole past. EASE is
deterministic: tuned on that same validation split and fitted once. `--tune` first
compares SASRec settings on the validation split (seed 0) and runs the seeds with the
best; without it, `SasrecConfig`'s defaults, the best of the last tuning.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python -m bench.ranker_seeds
    .venv/bin/python -m bench.ranker_seeds --models ours --preset quality
    .venv/bin/python -m bench.ranker_seeds --models sasrec --seeds 0 1 2 --tune
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.ranking_quality import PEER_GRIDS, peer_scores, ranker_scores, tuned
from bench.record import append_result, provenance
from bench.sasrec_peer import (
    SasrecConfig,
    fit_sasrec,
    sasrec_scores,
    user_sequences,
    validation_run,
)
from models.artifact import load_artifact
from models.data.readers import read_items, read_ratings
from models.data.splits import temporal_holdout
from models.data.table import Catalogue, IdMap, RatingTable
from models.evaluation.ranking import RankingTask, evaluate_ranking, ranking_task
from models.evaluation.ranking_baselines import interaction_matrix
from models.evaluation.rating import histories_by_user
from models.inference.predictor import Predictor
from models.training.configs import PRESETS
from models.training.pipeline import build_artifact

MODELS = ("ours", "sasrec")
# Compared by --tune, seed 0, on the validation split; each a change to SasrecConfig().
# Validation NDCG@10 on 2026-12-01, in order: 0.1711, 0.1683, 0.1626, 0.1698, 0.1642
# (Kang & McAuley's hidden 64, dropout 0.2, lr 1e-3 last).
SASREC_GRID: list[dict] = [
    {},
    {"hidden": 64},
    {"hidden": 64, "dropout": 0.2},
    {"hidden": 64, "lr": 1e-3},
    {"hidden": 64, "dropout": 0.2, "lr": 1e-3},
]


def ours(
    past: RatingTable, catalogue: Catalogue, item_ids: IdMap, task: RankingTask, seed: int,
    preset: str = "fast",
) -> dict:
    """The `preset` recipe, both models seeded with `seed`, scored through the Predictor."""
    rating, ranking = PRESETS[preset]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        built = build_artifact(
            past, catalogue, Path(tmp), rating_config=replace(rating, seed=seed),
            ranking_config=replace(ranking, seed=seed), progress=False,
        )
        artifact = load_artifact(Path(tmp))
    seconds = time.perf_counter() - started
    if artifact.item_ids.ids != item_ids.ids:
        raise ValueError("the artifact numbers items differently from the task")
    predictor = Predictor(artifact, torch.device("cpu"))
    histories = histories_by_user(past, artifact.item_ids)
    metrics = evaluate_ranking(task, ranker_scores(predictor, histories, task))
    # The same ranker without its item-to-item term: what the attention alone ranks.
    artifact.ranking_model.without_item_item()
    alone = evaluate_ranking(
        task, ranker_scores(Predictor(artifact, torch.device("cpu")), histories, task))
    return {
        **metrics, "attention_alone": alone, "seed": seed, "train_seconds": seconds,
        "rating_seconds": built.rating.seconds, "ranker_seconds": built.ranking.seconds,
        "best_epoch": built.ranking.best_epoch,
        "validation_ndcg": built.ranking.validation_ndcg,
        "item_item_weight": built.ranking.model.config.item_item_weight,
        "item_item_unliked": built.ranking.model.config.item_item_unliked,
        "item_item_validation": built.ranking.item_item_table(),
    }


def sasrec(past: RatingTable, item_ids: IdMap, task: RankingTask, config: SasrecConfig) -> dict:
    fitted = fit_sasrec(past, item_ids, config)
    sequences = user_sequences(past, item_ids)
    metrics = evaluate_ranking(task, sasrec_scores(fitted.model, sequences, task))
    return {
        **metrics, "seed": config.seed, "train_seconds": fitted.seconds,
        "best_epoch": fitted.best_epoch, "validation_ndcg": fitted.validation_ndcg,
        "validation_curve": [e["val_ndcg"] for e in fitted.validation],
    }


def tune_sasrec(past: RatingTable, item_ids: IdMap) -> tuple[SasrecConfig, list[dict]]:
    """The SASREC_GRID setting with the best validation NDCG@10 (seed 0), and every
    setting's figures."""
    found = []
    for change in SASREC_GRID:
        run = validation_run(past, item_ids, replace(SasrecConfig(), **change))
        best = max(e["val_ndcg"] for e in run.epochs)
        found.append({"change": change, "val_ndcg": best, "best_epoch": run.best_epoch,
                      "epochs_run": len(run.epochs), "seconds": run.seconds})
        print(f"SASRec {json.dumps(change)}: validation NDCG@10 {best:.4f} at epoch "
              f"{run.best_epoch} of {len(run.epochs)}, {run.seconds:.0f} s", flush=True)
    chosen = max(found, key=lambda f: f["val_ndcg"])["change"]
    return replace(SasrecConfig(), **chosen), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--tune", action="store_true",
                        help="choose SASRec's settings on the validation split first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast",
                        help="our training recipe (fast: what `because train` trains)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = provenance()

    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    catalogue = read_items(args.data / "u.item")
    past, future = temporal_holdout(table, 10)
    item_ids = IdMap.from_values(past.items)  # as `build_artifact` numbers them
    task = ranking_task(past, future, item_ids)

    clock = time.perf_counter()
    make, grid = PEER_GRIDS["ease"]
    params, ease_grid = tuned(make, grid, past, item_ids)
    user_ids = IdMap.from_values(past.users)
    x = interaction_matrix(past, user_ids, item_ids)
    model = make(**params).fit(x)
    seconds = time.perf_counter() - clock  # tuning and fitting, as for the others
    ease = evaluate_ranking(task, peer_scores(model, x, user_ids, task))
    ease |= {"params": params, "validation_grid": ease_grid, "train_seconds": seconds}
    print(f"EASE {params}: NDCG@10 {ease['ndcg']:.4f}", flush=True)

    config, tuning = SasrecConfig(), None
    if "sasrec" in args.models and args.tune:
        config, tuning = tune_sasrec(past, item_ids)
    runs: dict[str, list[dict]] = {name: [] for name in args.models}
    for seed in args.seeds:
        for name in args.models:
            if name == "ours":
                run = ours(past, catalogue, item_ids, task, seed, args.preset)
            else:
                run = sasrec(past, item_ids, task, replace(config, seed=seed))
            runs[name].append(run)
            print(f"{name} seed {seed}: NDCG@10 {run['ndcg']:.4f}, Recall@10 "
                  f"{run['recall']:.4f} (validation {run['validation_ndcg']:.4f}, epoch "
                  f"{run['best_epoch']}, {run['train_seconds']:.0f} s)", flush=True)
            if "attention_alone" in run:
                print(f"  item-to-item beta {run['item_item_weight']}, unliked weight "
                      f"{run['item_item_unliked']}; without it NDCG@10 "
                      f"{run['attention_alone']['ndcg']:.4f}", flush=True)

    print(f"\n{len(task.users)} users, last 10 held out, every unrated item ranked; "
          f"mean ± sd over seeds {args.seeds}")
    print("| model | NDCG@10 mean ± sd | Recall@10 mean | per-seed NDCG@10 | train s |")
    print("| --- | --- | --- | --- | --- |")
    for name, found in runs.items():
        ndcg = np.array([r["ndcg"] for r in found])
        spread = ndcg.std(ddof=1) if len(ndcg) > 1 else float("nan")
        print(f"| {name} | {ndcg.mean():.4f} ± {spread:.4f} "
              f"| {np.mean([r['recall'] for r in found]):.4f} "
              f"| {', '.join(f'{v:.4f}' for v in ndcg)} "
              f"| {np.mean([r['train_seconds'] for r in found]):.0f} |")
    if "ours" in runs:
        alone = np.array([r["attention_alone"]["ndcg"] for r in runs["ours"]])
        print(f"| ours without its item-to-item term | {alone.mean():.4f} ± "
              f"{alone.std(ddof=1) if len(alone) > 1 else float('nan'):.4f} | "
              f"{np.mean([r['attention_alone']['recall'] for r in runs['ours']]):.4f} | "
              f"{', '.join(f'{v:.4f}' for v in alone)} | (the same training) |")
    print(f"| EASE (reg {params['reg']:g}) | {ease['ndcg']:.4f} | {ease['recall']:.4f} | "
          f"deterministic | {ease['train_seconds']:.0f} |")
    path = append_result("ranker_seeds", {
        "seeds": args.seeds, "runs": runs, "ease": ease,
        "ours_recipe": {"preset": args.preset, "rating": PRESETS[args.preset][0].to_dict(),
                        "ranking": PRESETS[args.preset][1].to_dict()},
        "sasrec_config": config.to_dict(), "sasrec_tuning": tuning,
    }, started)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
