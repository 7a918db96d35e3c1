"""Recommendations and reasons a person agrees with, measured through the API.

Protocol: MovieLens-100K's temporal split (each user's last 10 ratings held out, as in
`bench.ranking_quality`). The recommended order's weight is chosen first, on a validation
split of the past (its own last 10 per user): the weight with the best NDCG@10 over the
held-out items the user rated 4 or more ("liked NDCG@10"). Then an artifact trained on
the whole past is served in process against a real redis-server; every user's past is
posted through the API and every user ranked (`POST /v1/rank`, k = 10, with explanations),
in the recommended order and in the ranking order; every fifth user's carousels are asked
for (rows = 3, k = 10). EASE is tuned and fitted in the same run. Last, the rating model's
attention against its exact contributions, in process: for 200 (user, unrated item) pairs
of 40 users, is the history item with the most attention the bigger lever (a larger
absolute contribution) than a random other one?

    .venv/bin/python -m bench.recommendations --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from bench.ranking_quality import PEER_GRIDS, peer_scores, tuned
from bench.record import append_result
from bench.serve_load import free_port
from models.artifact import Artifact, load_artifact
from models.data.readers import read_items, read_ratings
from models.data.splits import temporal_holdout
from models.data.table import Catalogue, IdMap, RatingTable
from models.evaluation.ranking import evaluate_ranking, metrics_at_k, ranking_task
from models.evaluation.ranking_baselines import interaction_matrix
from models.evaluation.rating import histories_by_user
from models.inference.predictor import ExplainJob, Predictor, ScoreJob
from models.training.configs import PRESETS
from models.training.pipeline import build_artifact
from service.app import create_app
from service.settings import Settings

LIKED = 4.0
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
ORDERS = ("recommended", "ranking")


def trained(past: RatingTable, catalogue: Catalogue, folder: Path, preset: str) -> Artifact:
    rating, ranking = PRESETS[preset]
    build_artifact(past, catalogue, folder, rating_config=rating, ranking_config=ranking,
                   progress=False)
    return load_artifact(folder)


def choose_weight(past: RatingTable, catalogue: Catalogue, folder: Path, preset: str) -> dict:
    """Liked NDCG@10 of the recommended order on the past's own last 10, by weight."""
    fit, val = temporal_holdout(past, 10)
    artifact = trained(fit, catalogue, folder, preset)
    task = ranking_task(fit, val, artifact.item_ids, min_rating=LIKED)
    histories = histories_by_user(fit, artifact.item_ids)
    every = np.arange(len(artifact.item_ids))
    found = {}
    for weight in WEIGHTS:
        predictor = Predictor(artifact, torch.device("cpu"), like_weight=weight)

        def score(rows: list[int], predictor: Predictor = predictor) -> np.ndarray:
            jobs = [ScoreJob(histories[task.users[r]], every, "recommended", top=10)
                    for r in rows]
            return np.stack([np.nan_to_num(r.score, nan=-np.inf) for r in predictor.run(jobs)])

        found[weight] = evaluate_ranking(task, score)["ndcg"]
        print(f"validation liked NDCG@10, weight {weight}: {found[weight]:.4f}", flush=True)
    return found


async def through_the_api(
    artifact_dir: Path, weight: float, past: RatingTable, future: RatingTable, item_ids: IdMap
) -> dict:
    """Every user's past posted, every user ranked in both orders, every fifth user's
    carousels: the figures a person would see."""
    redis_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            settings = Settings(artifact=artifact_dir, redis_url=f"redis://127.0.0.1:{redis_port}/0",
                                data_dir=Path(tmp), like_weight=weight, redis_timeout_s=10)
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://b") as api:
                    return await _measure(api, past, future, item_ids)
        finally:
            redis.terminate()
            redis.wait(10)


async def _measure(
    api: httpx.AsyncClient, past: RatingTable, future: RatingTable, item_ids: IdMap
) -> dict:
    held: dict[str, dict[str, float]] = {}
    for user, item, rating in zip(future.users.tolist(), future.items.tolist(),
                                  future.ratings.tolist(), strict=True):
        held.setdefault(user, {})[item] = rating
    order = np.lexsort((past.timestamps, past.users))
    by_user: dict[str, list[dict]] = {}
    for row in order.tolist():
        by_user.setdefault(str(past.users[row]), []).append(
            {"item_id": str(past.items[row]), "rating": float(past.ratings[row]),
             "timestamp": int(past.timestamps[row])})
    figures = {name: {"ndcg": [], "liked_ndcg": [], "top10": 0, "below_3": 0, "reasons": 0,
                      "reasons_positive": 0, "reasons_liked": 0, "despite": 0}
               for name in ORDERS}
    rows_asked = rows_full = rows_items_positive_anchor = 0
    repeats = 0
    users = sorted(held, key=lambda u: (len(u), u))
    for n, user in enumerate(users):
        ratings = by_user.get(user, [])
        for start in range(0, len(ratings), 500):
            r = await api.post(f"/v1/users/{user}/ratings",
                               json={"ratings": ratings[start : start + 500]})
            r.raise_for_status()
        relevant = {item_ids.index(i) for i in held[user] if i in item_ids}
        liked = {item_ids.index(i) for i, r in held[user].items() if r >= LIKED and i in item_ids}
        for name in ORDERS:
            r = await api.post("/v1/rank", json={"user_id": user, "k": 10, "explain": True,
                                                 "order": name})
            r.raise_for_status()
            items = r.json()["items"]
            ranked = np.array([item_ids.index(x["item_id"]) for x in items])
            f = figures[name]
            if relevant:
                f["ndcg"].append(metrics_at_k(ranked, relevant, 10)["ndcg"])
            if liked:
                f["liked_ndcg"].append(metrics_at_k(ranked, liked, 10)["ndcg"])
            f["top10"] += len(items)
            f["below_3"] += sum(x["predicted_rating"] < 3.0 for x in items)
            for x in items:
                f["reasons"] += len(x["because"])
                f["reasons_positive"] += sum(b["contribution"] > 0 for b in x["because"])
                f["reasons_liked"] += sum(b["rating"] >= LIKED for b in x["because"])
                f["despite"] += len(x["despite"])
        if n % 5 == 0:
            r = await api.get(f"/v1/users/{user}/because-you-watched",
                              params={"rows": 3, "k": 10})
            r.raise_for_status()
            rows = r.json()["rows"]
            shown = [x["item_id"] for row in rows for x in row["items"]]
            repeats += len(shown) - len(set(shown))
            rows_asked += len(rows)
            rows_full += sum(len(row["items"]) == 10 for row in rows)
            rows_items_positive_anchor += sum(row["anchor"]["rating"] >= LIKED for row in rows)
    out = {}
    for name, f in figures.items():
        out[name] = {
            "ndcg": float(np.mean(f["ndcg"])), "liked_ndcg": float(np.mean(f["liked_ndcg"])),
            "users": len(f["ndcg"]), "users_with_liked": len(f["liked_ndcg"]),
            "below_3_share": f["below_3"] / f["top10"],
            "reasons_positive_share": f["reasons_positive"] / max(1, f["reasons"]),
            "reasons_liked_share": f["reasons_liked"] / max(1, f["reasons"]),
            "reasons": f["reasons"], "despite": f["despite"],
        }
    out["carousels"] = {"rows": rows_asked, "full_share": rows_full / max(1, rows_asked),
                        "anchors_liked_share": rows_items_positive_anchor / max(1, rows_asked),
                        "repeated_items": repeats}
    return out


def ease_figures(past: RatingTable, future: RatingTable, item_ids: IdMap) -> dict:
    make, grid = PEER_GRIDS["ease"]
    params, _ = tuned(make, grid, past, item_ids)
    user_ids = IdMap.from_values(past.users)
    x = interaction_matrix(past, user_ids, item_ids)
    model = make(**params).fit(x)
    out = {"params": params}
    for name, task in (("ndcg", ranking_task(past, future, item_ids)),
                       ("liked_ndcg", ranking_task(past, future, item_ids, min_rating=LIKED))):
        out[name] = evaluate_ranking(task, peer_scores(model, x, user_ids, task))["ndcg"]
    return out


def attention_lever(artifact: Artifact, past: RatingTable, pairs_per_user: int = 5,
                    users: int = 40, seed: int = 0) -> dict:
    """Share of (user, item) pairs where removing the most attended history item moves the
    predicted rating more than removing a random other one (the rating model)."""
    predictor = Predictor(artifact, torch.device("cpu"))
    histories = histories_by_user(past, artifact.item_ids)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(sorted(histories), users, replace=False)
    wins = []
    for user in chosen:
        history = histories[str(user)]
        unrated = np.setdiff1d(np.arange(len(artifact.item_ids)), history.items)
        targets = rng.choice(unrated, pairs_per_user, replace=False)
        [found] = predictor.contributions([ExplainJob(history, targets, "rating")])
        for row in range(len(targets)):
            top = int(np.argmax(found.attention[row]))
            other = int(rng.choice(np.delete(np.arange(len(found.positions)), top)))
            wins.append(abs(found.contribution[row, top]) > abs(found.contribution[row, other]))
    return {"pairs": len(wins), "top_attention_bigger_lever": float(np.mean(wins))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--weight", type=float, help="skip the validation search")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast",
                        help="training recipe (fast: what `make serve` trains)")
    args = parser.parse_args()

    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    catalogue = read_items(args.data / "u.item")
    past, future = temporal_holdout(table, 10)
    with tempfile.TemporaryDirectory() as tmp:
        validation = {}
        if args.weight is None:
            validation = choose_weight(past, catalogue, Path(tmp) / "validation",
                                       args.preset)
        weight = args.weight if args.weight is not None else max(validation, key=validation.get)
        artifact_dir = Path(tmp) / "past"
        artifact = trained(past, catalogue, artifact_dir, args.preset)
        api = asyncio.run(through_the_api(artifact_dir, weight, past, future,
                                          artifact.item_ids))
        lever = attention_lever(artifact, past)
        # The goal's 200 pairs carry about 2.5 points of sampling error; 1000 others, 1.2.
        lever_wide = attention_lever(artifact, past, users=200, seed=1)
    ease = ease_figures(past, future, artifact.item_ids)

    print(f"like weight {weight} (validation liked NDCG@10 by weight: {validation})")
    ranker = artifact.ranking_model.config
    print(f"ranker's item-to-item term: beta {ranker.item_item_weight}, unliked weight "
          f"{ranker.item_item_unliked}")
    print("| order | NDCG@10 | liked NDCG@10 | top-10 predicted < 3 | reasons > 0 | "
          "reasons rated >= 4 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ORDERS:
        m = api[name]
        print(f"| {name} | {m['ndcg']:.4f} | {m['liked_ndcg']:.4f} | {m['below_3_share']:.1%} "
              f"| {m['reasons_positive_share']:.1%} | {m['reasons_liked_share']:.1%} |")
    print(f"| EASE {ease['params']} | {ease['ndcg']:.4f} | {ease['liked_ndcg']:.4f} | | | |")
    ratio = api["recommended"]["liked_ndcg"] / ease["liked_ndcg"]
    print(f"liked NDCG@10 recommended / EASE: x{ratio:.3f} (goal >= 1.10)")
    c = api["carousels"]
    print(f"carousel rows with 10 items: {c['full_share']:.1%} of {c['rows']} "
          f"(goal >= 95%); repeated items {c['repeated_items']}")
    print(f"top-attention item the bigger lever: {lever['top_attention_bigger_lever']:.1%} "
          f"of {lever['pairs']} pairs (goal >= 90%); "
          f"{lever_wide['top_attention_bigger_lever']:.1%} of {lever_wide['pairs']} other pairs")
    path = append_result("recommendations", {
        "preset": args.preset, "like_weight": weight, "validation_liked_ndcg": validation,
        "api": api, "ease": ease, "attention_lever": lever,
        "attention_lever_wide": lever_wide,
        "rating_config": artifact.manifest["rating"],
        "ranking_config": artifact.manifest["ranking"],
    })
    print(f"appended to {path}")
    print(json.dumps({"ratio_liked_vs_ease": ratio}))


if __name__ == "__main__":
    main()
