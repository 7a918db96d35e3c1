"""What the ranker's choices are worth on MovieLens-100K, in one run: the training objective
(whole-catalogue softmax against Lake et al.'s popularity-sampled negatives), whether rating
levels enter the values, and the spread over seeds; EASE beside them; and whether the
ranker's attention is a faithful explanation.

Protocol as bench/ranking_quality.py: each user's last 10 ratings by time held out, every
unrated item ranked, NDCG@10. One rating model (seed 0) supplies the frozen item tables;
each variant trains its ranker with several seeds (a seed also redraws the validation
users). Faithfulness, on the default variant: for each test user's top 10 items, the score
drop when the history item with the highest attention (mean over hops, or last hop) is
removed, against removing a random history item.

    .venv/bin/python -m bench.ranker_ablation --data ../shared/data/ml-100k --seeds 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.ranking_quality import PEER_GRIDS, peer_scores, tuned
from bench.record import append_result
from models.data.encoded import EncodedRatings
from models.data.readers import MOVIELENS_SCALE, read_ratings
from models.data.splits import temporal_holdout
from models.data.table import IdMap
from models.evaluation.ranking import RankingTask, evaluate_ranking, ranking_task
from models.evaluation.ranking_baselines import interaction_matrix
from models.evaluation.rating import histories_by_user
from models.history import History, PaddedBatch, pad_batch
from models.inference.scoring import catalogue_scores
from models.networks.ranking import RankingModel, RankingOutput
from models.training.item_embeddings import frozen_item_embeddings
from models.training.ranking import RankingTrainConfig, train_ranking_model
from models.training.rating import RatingTrainConfig, train_rating_model

VARIANTS: dict[str, Callable[[RankingTrainConfig], RankingTrainConfig]] = {
    "softmax (default)": lambda c: c,
    "sampled negatives (Lake et al.'s)": lambda c: replace(c, objective="sampled"),
    "no rating levels": lambda c: replace(c, model=replace(c.model, ratings=False)),
}


@torch.inference_mode()
def predict_ranking(model: RankingModel, batch: PaddedBatch) -> RankingOutput:
    """Ranking logits (H, C) with the attention maps (H, C, L) the explanations read."""
    return model(batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)


def faithfulness(
    ranker: RankingModel,
    task: RankingTask,
    histories: dict[str, History],
    users: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Mean score drop, over (user, top-10 item) pairs, when one history item is removed:
    the most attended (mean over hops; last hop), or a random one; and how often each
    attention choice drops the score more than the random removal."""
    max_history = ranker.config.max_history
    chosen = rng.choice(len(task.users), size=min(users, len(task.users)), replace=False)
    rows: list[tuple[History, np.ndarray]] = []
    for position in chosen:
        history = histories[task.users[position]].newest(max_history)
        if len(history.items) < 2:
            continue
        scores = catalogue_scores(ranker, [history])[0]
        scores[task.seen[position]] = -np.inf
        top = np.argsort(-scores)[:10]
        batch = pad_batch([history], [top])
        out = predict_ranking(ranker, batch)
        n = len(history.items)
        for column, item in enumerate(top.tolist()):
            targets = np.array([item])
            rows.append((history, targets))
            for attention in (out.attention, out.last_hop):
                rows.append((history.without(int(attention[0, column, :n].argmax())), targets))
            rows.append((history.without(int(rng.integers(n))), targets))
    scores = []
    for start in range(0, len(rows), 512):
        part = rows[start : start + 512]
        batch = pad_batch([h for h, _ in part], [t for _, t in part])
        scores.append(predict_ranking(ranker, batch).score[:, 0].numpy())
    full, mean_hop, last_hop, random = np.concatenate(scores).reshape(-1, 4).T
    drop = {"mean_hops": full - mean_hop, "last_hop": full - last_hop, "random": full - random}
    report = {f"mean_drop_{name}": float(d.mean()) for name, d in drop.items()}
    for name in ("mean_hops", "last_hop"):
        report[f"share_beating_random_{name}"] = float((drop[name] > drop["random"]).mean())
    report["pairs"] = len(full)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--faithfulness-users", type=int, default=300)
    args = parser.parse_args()

    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    past, future = temporal_holdout(table, 10)
    data = EncodedRatings.encode(past)
    rating = train_rating_model(data, MOVIELENS_SCALE, RatingTrainConfig(), progress=False)
    item_ids = data.item_ids
    embeddings = frozen_item_embeddings(data, rating.model)
    task = ranking_task(past, future, item_ids)
    histories = histories_by_user(past, item_ids)
    base = RankingTrainConfig()

    runs: list[dict] = []
    faithful: dict[str, float] = {}
    for name, variant in VARIANTS.items():
        for seed in range(args.seeds):
            config = variant(replace(base, seed=seed))
            fitted = train_ranking_model(data, embeddings, MOVIELENS_SCALE, config, progress=False)
            started = time.perf_counter()
            metrics = evaluate_ranking(task, lambda rows, m=fitted.model: catalogue_scores(
                m, [histories[task.users[r]] for r in rows]))
            runs.append({
                "variant": name, "seed": seed, **metrics,
                "eval_seconds_per_user": (time.perf_counter() - started) / len(task.users),
                "best_epoch": fitted.best_epoch, "validation_ndcg": fitted.validation_ndcg,
                "train_seconds": fitted.seconds,
            })
            print(f"{name} seed {seed}: NDCG@10 {metrics['ndcg']:.4f} (validation "
                  f"{fitted.validation_ndcg:.4f}, epoch {fitted.best_epoch}, "
                  f"{fitted.seconds:.0f} s)", flush=True)
            if not faithful:  # the default variant, first seed
                faithful = faithfulness(fitted.model, task, histories, args.faithfulness_users,
                                        np.random.default_rng(0))
                print(f"faithfulness: {faithful}", flush=True)

    user_ids = IdMap.from_values(past.users)
    x = interaction_matrix(past, user_ids, item_ids)
    make, grid = PEER_GRIDS["ease"]
    params, _ = tuned(make, grid, past, item_ids)
    ease = evaluate_ranking(task, peer_scores(make(**params).fit(x), x, user_ids, task))

    print(f"\n{len(task.users)} users, last 10 held out; EASE ({params}) NDCG@10 "
          f"{ease['ndcg']:.4f}")
    print("| variant | NDCG@10 per seed | mean | Recall@10 mean |")
    print("| --- | --- | --- | --- |")
    for name in VARIANTS:
        mine = [r for r in runs if r["variant"] == name]
        per_seed = ", ".join(f"{r['ndcg']:.4f}" for r in mine)
        print(f"| {name} | {per_seed} | {np.mean([r['ndcg'] for r in mine]):.4f} "
              f"| {np.mean([r['recall'] for r in mine]):.4f} |")
    print(f"faithfulness over {faithful['pairs']} (user, top-10 item) pairs: mean score drop "
          f"removing the most attended item {faithful['mean_drop_mean_hops']:.3f} (mean of "
          f"hops), {faithful['mean_drop_last_hop']:.3f} (last hop), a random item "
          f"{faithful['mean_drop_random']:.3f}; attention beats random in "
          f"{faithful['share_beating_random_mean_hops']:.1%} / "
          f"{faithful['share_beating_random_last_hop']:.1%} of pairs")
    path = append_result("ranker_ablation", {
        "runs": runs, "ease": {**ease, "params": params}, "faithfulness": faithful,
        "rating_train_seconds": rating.seconds,
    })
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
