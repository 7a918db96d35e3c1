"""Training at catalogue scale, in bounded memory: seconds and peak resident memory per stage.

A planted shop catalogue (`models.data.synthetic.shop_ratings`: item clusters, Zipf
popularity, users with tastes over clusters) is generated, encoded, and both models are
trained end to end as `because train` does: the rating model, the frozen co-occurrence
embeddings, the ranker with sampled negatives, the artifact written with its FAISS index
(`--out` keeps it, with the users' histories, for `bench.retrieval_recall`). Each stage is
timed and its peak RSS read from the kernel (the high-water mark is reset before each
stage through /proc/self/clear_refs). Epochs are capped (`--rating-epochs`,
`--ranker-epochs`): the question is what one pass costs and whether memory stays
proportional to the ratings. Above 20,000 items the ranker's validation NDCG@10 ranks
held-out items among 1000 popular ones.

    .venv/bin/python -m bench.train_scale --users 20000 --items 200000 --ratings 2000000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from bench.record import append_result, provenance
from models.artifact import save_artifact
from models.data.encoded import EncodedRatings
from models.data.synthetic import shop_ratings
from models.data.table import Catalogue, RatingScale
from models.inference.item_index import build_retrieval
from models.training.item_embeddings import frozen_item_embeddings
from models.training.ranking import RankingTrainConfig, train_ranking_model
from models.training.rating import RatingTrainConfig, train_rating_model

T = TypeVar("T")


def peak_rss_gb() -> float:
    """This process's peak resident memory since the last reset, in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def staged(stages: list[dict], name: str, work: Callable[[], T]) -> T:
    try:  # resets the high-water mark to the current RSS (Linux 4.0+)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    started = time.perf_counter()
    result = work()
    stages.append({"stage": name, "seconds": round(time.perf_counter() - started, 1),
                   "peak_rss_gb": round(peak_rss_gb(), 2)})
    print(stages[-1], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--ratings", type=int, default=2_000_000,
                        help="picks drawn (a user's repeated picks are dropped)")
    parser.add_argument("--rating-epochs", type=int, default=2)
    parser.add_argument("--ranker-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="keep the artifact (and its ratings) here")
    args = parser.parse_args()
    started = provenance()
    scale = RatingScale()
    stages: list[dict] = []
    tables = [staged(stages, "generate",
                     lambda: shop_ratings(args.users, args.items, args.ratings).table)]
    # Popped: what `because train` holds after reading is the encoded table only.
    data = staged(stages, "encode", lambda: EncodedRatings.encode(tables.pop()))
    rating_config = RatingTrainConfig(max_epochs=args.rating_epochs, refit=False)
    rating = staged(stages, "rating model",
                    lambda: train_rating_model(data, scale, rating_config, progress=False))
    embeddings = staged(stages, "item embeddings",
                        lambda: frozen_item_embeddings(data, rating.model))
    ranking_config = RankingTrainConfig(objective="sampled", max_epochs=args.ranker_epochs)
    ranking = staged(stages, "ranking model", lambda: train_ranking_model(
        data, embeddings, scale, ranking_config, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        index, neighbours = staged(stages, "retrieval index and neighbours", lambda:
                                   build_retrieval(ranking.model.item_embeddings.numpy()))
        staged(stages, "artifact", lambda: save_artifact(
            folder, rating.model, ranking.model, data.item_ids, Catalogue.empty(),
            rating_train_config=rating_config.to_dict(),
            ranking_train_config=ranking_config.to_dict(), data={}, metrics={},
            item_index=index, item_neighbours=neighbours))
        if args.out:
            timelines = data.timelines
            np.savez(args.out / "histories.npz", items=timelines.items,
                     ratings=timelines.ratings, offsets=timelines.offsets)
    record = {
        "users": len(data.user_ids), "items": len(data.item_ids), "ratings": len(data),
        "catalogue": args.items, "rating_epochs": args.rating_epochs,
        "ranker_epochs": args.ranker_epochs, "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages), 1),
        "peak_rss_gb": max(s["peak_rss_gb"] for s in stages),
        "validation_rmse": rating.validation_rmse,
        "ranker_validation_ndcg": ranking.validation_ndcg,
    }
    print(f"{record['ratings']:,} ratings, {record['users']:,} users, {record['items']:,} items "
          f"rated: {record['total_seconds']:.0f} s, peak RSS {record['peak_rss_gb']:.2f} GB")
    print(f"appended to {append_result('train_scale', record, started)}")


if __name__ == "__main__":
    main()
