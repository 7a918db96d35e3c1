"""New items without retraining on MovieLens-100K: fold-in against the bias-only peer and
a retrained model.

Protocol: 10% of the items (`np.random.default_rng(0)`) are held out of training; both
models are trained on the other items' ratings. Evaluated: the held-out items with at least
25 ratings. For each, its ratings sorted by time (ties: file order); the first n are
revealed (n = 0 is the genre prior alone) and folded in with every trained weight frozen,
each rater's `before` history being their trained-item ratings strictly before that rating
and `after` their other trained-item ratings. The remaining ratings are predicted from each
rater's trained-item ratings before that rating's time. Ranking: the share of the later
raters whose whole-catalogue top 50 (every trained item plus the folded one; history as of
the n-th revealed rating) holds the item. At n = 10, a model retrained with every held-out
item's first 10 ratings is the target. Trained artifacts are cached in /tmp/foldin_cache.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.item_fold_in --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bench.record import append_result, provenance
from models.artifact import Artifact, load_artifact
from models.data.readers import read_items, read_ratings
from models.data.table import Catalogue, IdMap, RatingTable
from models.history import History
from models.inference.fold_in import (
    COOCCURRENCE_PRIOR,
    COOCCURRENCE_SCALE,
    HISTORY_ITEMS,
    HISTORY_WEIGHT,
    PULL,
    RANKING_BIAS_PULL,
    AttributePrior,
    FoldedItem,
    Rater,
    attribute_prior,
    bias_only_fold_in,
    fold_in_item,
    mean_item,
    with_items,
)
from models.inference.scoring import catalogue_scores, predict_ratings
from models.networks.ranking import RankingModel
from models.training.pipeline import build_artifact

CACHE = Path("/tmp/foldin_cache")
HELD_OUT = 0.1
MIN_RATINGS = 25
RETRAIN_N = 10
NS = (0, 1, 3, 5, 10, 20)
TOP = 50
EXPOSURE = 100  # users who never rated the item: how often it reaches their top TOP


@dataclass(frozen=True)
class ItemSplit:
    """train: the trained items' ratings; held_out: the held-out items' ratings, each
    item's in time order (ties: file order), held_rows their rows in the file; evaluated:
    the held-out ids evaluated."""

    train: RatingTable
    held_out: RatingTable
    held_rows: np.ndarray
    evaluated: list[str]


def item_split(table: RatingTable, seed: int = 0) -> ItemSplit:
    """Holds out a random 10% of the items, every rating of theirs."""
    ids = np.unique(table.items)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(ids, size=round(HELD_OUT * len(ids)), replace=False).tolist())
    out = np.fromiter((i in chosen for i in table.items.tolist()), bool, len(table))
    rows = np.flatnonzero(out)
    rows = rows[np.lexsort((rows, table.timestamps[rows], table.items[rows]))]
    held = table.take(rows)
    counts = dict(zip(*np.unique(held.items, return_counts=True), strict=True))
    evaluated = sorted((i for i, c in counts.items() if c >= MIN_RATINGS), key=int)
    return ItemSplit(table.take(np.flatnonzero(~out)), held, rows, evaluated)


def first_ratings(held_out: RatingTable, n: int) -> RatingTable:
    """Every held-out item's first n ratings by time."""
    rank = np.zeros(len(held_out), np.int64)
    for item in np.unique(held_out.items):
        rows = np.flatnonzero(held_out.items == item)
        rank[rows] = np.arange(len(rows))
    return held_out.take(np.flatnonzero(rank < n))


def cached_artifact(name: str, table: RatingTable, catalogue: Catalogue) -> Artifact:
    """The artifact trained on `table`, built once into /tmp/foldin_cache/<name>."""
    folder = CACHE / f"{name}-{table.fingerprint()[:12]}"
    if not (folder / "manifest.json").exists():
        build_artifact(table, catalogue, folder, progress=False)
    return load_artifact(folder)


@dataclass(frozen=True)
class Timeline:
    """Every user's trained-item ratings in (timestamp, file row) order, as dense indices of
    one model's items: what "a history as of a moment" reads."""

    moments: dict[str, np.ndarray]  # user -> (k,) timestamp * ROWS + file row, ascending
    items: dict[str, np.ndarray]
    ratings: dict[str, np.ndarray]

    def split(self, user: str, moment: int) -> tuple[History, History]:
        """The user's ratings strictly before `moment` and the rest."""
        if user not in self.moments:
            return History.empty(), History.empty()
        cut = int(np.searchsorted(self.moments[user], moment))
        items, ratings = self.items[user], self.ratings[user]
        return History(items[:cut], ratings[:cut]), History(items[cut:], ratings[cut:])


ROWS = 1 << 20  # more than the file's rows: timestamp * ROWS + row orders by time, then row


def timeline(table: RatingTable, trained: set[str], ids: IdMap) -> Timeline:
    """The Timeline of `table`'s (the whole file's) ratings of trained items, encoded by
    `ids` (a model's item order)."""
    rows = np.arange(len(table))
    keep = np.fromiter((i in trained for i in table.items.tolist()), bool, len(table))
    order = np.lexsort((rows, table.timestamps, table.users))
    order = order[keep[order]]
    users = table.users[order]
    moments, items, ratings = {}, {}, {}
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        chunk = order[start:end]
        user = str(users[start])
        moments[user] = table.timestamps[chunk].astype(np.int64) * ROWS + chunk
        items[user] = ids.encode(table.items[chunk])
        ratings[user] = table.ratings[chunk].astype(np.float32)
    return Timeline(moments, items, ratings)


@dataclass(frozen=True)
class Context:
    """What evaluating one item needs: the base models, their priors and timelines, the
    retrained model and its timeline, and the fold-in settings."""

    base: Artifact
    prior: AttributePrior
    mean: FoldedItem
    line: Timeline
    retrained: Artifact | None  # None: tuning runs, which compare fold-ins only
    retrained_line: Timeline | None
    trained: np.ndarray | None  # the trained items' indices in the retrained model
    others: list[str]  # every user, for the exposure sample
    settings: dict


def evaluate_item(
    ctx: Context, item: str, ratings: RatingTable, moments: np.ndarray, genres: list[str],
    seed: int,
) -> dict[int, dict[str, list]]:
    """{n: {"ours" | "bias_only" | "retrained": squared errors, "hits" | "exposure" |
    "retrained_hits": 0/1 per user, "seconds": fold-in time}} for one held-out item."""
    users, truth = ratings.users.tolist(), ratings.ratings.astype(np.float64)
    rating_model, ranking_model = ctx.base.rating_model, ctx.base.ranking_model
    rng = np.random.default_rng(seed)
    raters = set(users)
    strangers = [u for u in rng.permutation(ctx.others).tolist() if u not in raters][:EXPOSURE]
    out = {}
    for n in NS:
        revealed = []
        for j in range(n):
            before, after = ctx.line.split(users[j], int(moments[j]))
            revealed.append(Rater(before, float(truth[j]), after))
        started = time.perf_counter()
        folded = fold_in_item(rating_model, ranking_model, revealed, ctx.prior.item(genres),
                              **ctx.settings)
        seconds = time.perf_counter() - started
        peer = replace(ctx.mean, rating_bias=bias_only_fold_in(rating_model, revealed,
                                                               prior=ctx.mean))
        rest = [ctx.line.split(users[j], int(moments[j]))[0] for j in range(n, len(users))]
        rating_ours, ranking_ours = with_items(rating_model, ranking_model, [folded])
        new = np.array([rating_model.n_items])
        row = {
            "ours": _squared(predict_ratings(rating_ours, rest, [new] * len(rest)), truth[n:]),
            "bias_only": _squared(predict_ratings(
                with_items(rating_model, ranking_model, [peer])[0], rest, [new] * len(rest)
            ), truth[n:]),
            "seconds": [seconds],
        }
        moment = int(moments[0]) if n == 0 else (int(moments[n - 1]) // ROWS + 1) * ROWS
        later = [ctx.line.split(u, moment)[0] for u in users[n:]]
        row["hits"] = _in_top(ranking_ours, later, rating_model.n_items)
        row["exposure"] = _in_top(
            ranking_ours, [ctx.line.split(u, moment)[0] for u in strangers], rating_model.n_items
        )
        if n == RETRAIN_N and ctx.retrained is not None:
            index = ctx.retrained.item_ids.index(item)
            rest = [ctx.retrained_line.split(users[j], int(moments[j]))[0]
                    for j in range(n, len(users))]
            row["retrained"] = _squared(predict_ratings(
                ctx.retrained.rating_model, rest, [np.array([index])] * len(rest)
            ), truth[n:])
            later = [ctx.retrained_line.split(u, moment)[0] for u in users[n:]]
            row["retrained_hits"] = _in_top(
                ctx.retrained.ranking_model, later, index, ctx.trained
            )
            row["retrained_exposure"] = _in_top(
                ctx.retrained.ranking_model,
                [ctx.retrained_line.split(u, moment)[0] for u in strangers], index, ctx.trained,
            )
        out[n] = row
    return out


def _squared(predicted: list[np.ndarray], truth: np.ndarray) -> list[float]:
    return ((np.concatenate(predicted) - truth) ** 2).tolist() if len(truth) else []


def _in_top(
    ranker: RankingModel, histories: list[History], item: int,
    catalogue: np.ndarray | None = None,
) -> list[int]:
    """1 per history whose top TOP (among `catalogue` + item, default every item, minus the
    history's own items) holds `item`; empty histories are skipped."""
    histories = [h for h in histories if len(h)]
    if not histories:
        return []
    scores = catalogue_scores(ranker, histories)
    hits = []
    for history, row in zip(histories, scores, strict=True):
        row[history.items] = -np.inf
        pool = row if catalogue is None else row[catalogue]
        hits.append(int((pool > row[item]).sum() < TOP))
    return hits


def summary(per_item: list[dict[int, dict[str, list]]]) -> dict[int, dict[str, float]]:
    """Per n: RMSE of each rating method over every remaining rating, the hit and exposure
    shares over every user, the mean fold-in seconds."""
    out = {}
    for n in NS:
        pooled: dict[str, list] = {}
        for item in per_item:
            for key, values in item[n].items():
                pooled.setdefault(key, []).extend(values)
        row = {k: float(np.sqrt(np.mean(pooled[k])))
               for k in ("ours", "bias_only", "retrained") if k in pooled}
        shares = ("hits", "exposure", "retrained_hits", "retrained_exposure", "seconds")
        row |= {k: float(np.mean(pooled[k])) for k in shares if k in pooled}
        row["predicted"] = len(pooled["ours"])
        out[n] = row
    return out


def print_table(rows: dict[int, dict[str, float]]) -> None:
    print(f"| n | ours RMSE | bias-only RMSE | retrained RMSE | ratings | top-{TOP} hits "
          "| exposure | retrained hits | retrained exposure | fold-in s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    cell = lambda row, k: f"{row[k]:.4f}" if k in row else ""  # noqa: E731
    for n, row in rows.items():
        print(f"| {n} | {cell(row, 'ours')} | {cell(row, 'bias_only')} | "
              f"{cell(row, 'retrained')} | {row['predicted']} | {cell(row, 'hits')} | "
              f"{cell(row, 'exposure')} | {cell(row, 'retrained_hits')} | "
              f"{cell(row, 'retrained_exposure')} | "
              f"{cell(row, 'seconds')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--pull", type=float, default=PULL)
    parser.add_argument("--history-weight", type=float, default=HISTORY_WEIGHT)
    parser.add_argument("--ranking-bias-pull", type=float, default=RANKING_BIAS_PULL)
    parser.add_argument("--skip-retrained", action="store_true",
                        help="compare the fold-ins only (tuning runs)")
    parser.add_argument("--items", default="all", choices=("all", "even", "odd"),
                        help="which evaluated items (by position): choose settings on one half")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started_at = provenance()
    started = time.perf_counter()
    table, _ = read_ratings(args.data / "u.data", layout="grouplens")
    catalogue = read_items(args.data / "u.item")
    split = item_split(table)
    base = cached_artifact("base", split.train, catalogue)
    retrained = None
    if not args.skip_retrained:
        with_first = RatingTable.concat([split.train, first_ratings(split.held_out, RETRAIN_N)])
        retrained = cached_artifact("retrained", with_first, catalogue)
    if args.train_only:
        return
    trained = set(base.item_ids.ids)
    settings = {"pull": args.pull, "history_weight": args.history_weight,
                "ranking_bias_pull": args.ranking_bias_pull}
    fixed = {"history_items": HISTORY_ITEMS, "cooccurrence_prior": COOCCURRENCE_PRIOR,
             "cooccurrence_scale": COOCCURRENCE_SCALE, "bias_only_shrink": 10.0}
    ctx = Context(
        base=base,
        prior=attribute_prior(base.rating_model, base.ranking_model,
                              catalogue.genres_of(base.item_ids.ids)),
        mean=mean_item(base.rating_model, base.ranking_model),
        line=timeline(table, trained, base.item_ids),
        retrained=retrained,
        retrained_line=retrained and timeline(table, trained, retrained.item_ids),
        trained=retrained and retrained.item_ids.encode(np.array(base.item_ids.ids)),
        others=sorted(set(table.users.tolist()), key=int),
        settings=settings,
    )
    chosen = split.evaluated[{"all": slice(None), "even": slice(0, None, 2),
                              "odd": slice(1, None, 2)}[args.items]]
    per_item = []
    for k, item in enumerate(chosen):
        rows = np.flatnonzero(split.held_out.items == item)
        moments = split.held_out.timestamps[rows].astype(np.int64) * ROWS + split.held_rows[rows]
        per_item.append(evaluate_item(ctx, item, split.held_out.take(rows), moments,
                                      catalogue.genres.get(item, []), seed=k))
    rows = summary(per_item)
    print(f"{len(chosen)} held-out items ({args.items}), settings {settings}")
    print_table(rows)
    seconds = round(time.perf_counter() - started, 1)
    record = {
        "protocol": {"held_out": HELD_OUT, "min_ratings": MIN_RATINGS, "ns": list(NS),
                     "top": TOP, "exposure_users": EXPOSURE, "items": args.items,
                     "evaluated": len(chosen)},
        "settings": settings | fixed,
        "results": {str(n): row for n, row in rows.items()},
        "base_metrics": base.manifest["metrics"],
        "retrained_metrics": retrained and retrained.manifest["metrics"],
        "wall_s": seconds,
    }
    print(f"wall time {seconds} s; appended to "
          f"{append_result('item_fold_in', record, started_at)}")


if __name__ == "__main__":
    main()
