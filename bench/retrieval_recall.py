"""Does FAISS retrieval find what the ranker would rank first if it scored everything?

For an artifact trained at catalogue scale (`bench.train_scale --out DIR`), sampled users'
whole histories are ranked twice: exhaustively (the ranking model's logit of every item they
have not rated; its top 10 is the truth) and as the service ranks a catalogue above
`BECAUSE_EXHAUSTIVE_MAX_ITEMS`: the artifact's FAISS index retrieves the neighbours of the
user's newest liked items plus the items of largest learned bias, and the ranker scores only
that pool. Recall@10 = the share of the exhaustive top 10 the pool's top 10 keeps; per
setting of the index's probes and the service's retrieval settings, with the median time of
retrieval plus scoring for one user (one thread). The queries are the user's newest items
(what the service does: the ranker attends to every item it reads, whatever its rating),
or, as before, only their newest liked ones.

    .venv/bin/python -m bench.retrieval_recall --artifact DIR
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from bench.record import append_result, provenance
from models.artifact import load_artifact
from models.history import History
from models.inference.predictor import Predictor, ScoreJob
from models.inference.scoring import catalogue_scores
from service.retrieval import ItemIndex

SOURCES = ("all", "liked")
NPROBES = (8, 16)
QUERIES = (32, 64, 128)
PER_QUERY = (50, 100, 150)
POPULAR = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    started = provenance()
    torch.set_num_threads(1)
    artifact = load_artifact(args.artifact)
    saved = np.load(args.artifact / "histories.npz")
    offsets = saved["offsets"]
    lengths = np.diff(offsets)
    rng = np.random.default_rng(0)
    users = rng.choice(np.flatnonzero(lengths >= 5), args.users, replace=False)
    histories = [History(saved["items"][offsets[u] : offsets[u + 1]],
                         saved["ratings"][offsets[u] : offsets[u + 1]]) for u in users]
    predictor = Predictor(artifact, torch.device("cpu"))
    vectors = predictor.item_vectors()
    index = ItemIndex(vectors.embeddings, vectors.bias, artifact.item_index)
    liked = artifact.scale.liked

    truth = []
    for history in histories:
        scores = catalogue_scores(artifact.ranking_model, [history])[0]
        scores[history.items] = -np.inf
        truth.append(set(np.argsort(-scores, kind="stable")[:10].tolist()))

    found = []
    for source, nprobe, queries, per_query in itertools.product(
            SOURCES, NPROBES, QUERIES, PER_QUERY):
        if hasattr(index.index, "nprobe"):
            index.index.nprobe = nprobe
        elif nprobe != NPROBES[0]:
            continue  # an exact index has no probes
        recalls, seconds, pools = [], [], []
        for history, best in zip(histories, truth, strict=True):
            begun = time.perf_counter()
            asked = history.items if source == "all" else history.items[history.ratings >= liked]
            pool = index.candidates(asked[::-1][:queries], per_query, POPULAR)
            pool = pool[~np.isin(pool, history.items)]
            [result] = predictor.run([ScoreJob(history, pool, "ranking", top=10)])
            seconds.append(time.perf_counter() - begun)
            recalls.append(len(best & set(pool[result.best].tolist())) / 10)
            pools.append(len(pool))
        found.append({"source": source, "nprobe": nprobe, "queries": queries,
                      "per_query": per_query,
                      "recall_at_10": float(np.mean(recalls)),
                      "p50_ms": float(np.median(seconds) * 1000),
                      "mean_pool": float(np.mean(pools))})
        print(found[-1], flush=True)
    print("| queries from | nprobe | queries | per query | recall@10 | p50 ms | pool |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for f in found:
        print(f"| {f['source']} | {f['nprobe']} | {f['queries']} | {f['per_query']} "
              f"| {f['recall_at_10']:.3f} "
              f"| {f['p50_ms']:.1f} | {f['mean_pool']:.0f} |")
    record = {"artifact_items": len(artifact.item_ids), "users": args.users,
              "index": type(artifact.item_index).__name__, "found": found}
    print(f"appended to {append_result('retrieval_recall', record, started)}")


if __name__ == "__main__":
    main()
