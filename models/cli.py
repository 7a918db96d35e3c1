"""`because data fetch`, `because train`, `because evaluate`.

Flag defaults are written here, not read from the training configs: `because serve` builds
the same parser and must not import training code (tests/test_cli.py checks it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="fetch demo data")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download a demo data set")
    fetch.add_argument("name", choices=["movielens-100k"])
    fetch.add_argument("--dest", type=Path, default=Path("var/data"))
    fetch.set_defaults(run=_fetch)

    train = commands.add_parser(
        "train",
        help="train both models, write an artifact",
        description="Trains both models on a ratings file, or the ranking model alone on "
        "interactions (a file without a rating column), and writes an artifact.",
    )
    train.add_argument(
        "--train", type=Path, required=True,
        help="ratings or interactions: GroupLens, RecBole, CSV or Parquet (README: "
        "\"Bring your own data\")",
    )
    train.add_argument("--items", type=Path, help="item catalogue file (titles, genres)")
    train.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    train.add_argument(
        "--rating-scale", type=_rating_scale, metavar="LOW:HIGH:STEP",
        help="the data's ratings (1:5:1, MovieLens's stars; 0.5:5:0.5 for half stars); "
        "recorded in the artifact, which the service checks posted ratings against",
    )
    train.add_argument(
        "--preset", choices=["fast", "quality"], default="fast",
        help="fast (default): the demo's recipe, about half the epochs; quality: the "
        "slower recipe the quality benchmarks measure (bench/findings.md)",
    )
    train.add_argument("--head", choices=["dot", "mlp1", "mlp2"], help="rating head (dot)")
    train.add_argument("--dim", type=int, help="rating model embedding width (128)")
    train.add_argument("--epochs", type=int, dest="max_epochs", help="rating model epochs (30)")
    train.add_argument(
        "--no-biases",
        action="store_false",
        dest="biases",
        default=None,
        help="use Hutter et al.'s (r - 3) / 2 values instead of ad hoc residuals",
    )
    train.add_argument(
        "--no-implicit",
        action="store_false",
        dest="implicit",
        default=None,
        help="drop the implicit (which-items) path",
    )
    train.add_argument(
        "--opinion-attention", type=float, metavar="KAPPA",
        help="the rating model's attention lean toward ratings far from the item's usual "
        "one (1): 0 fits the ratings a little better, its reasons a little worse",
    )
    train.add_argument(
        "--ranker-objective",
        choices=["softmax", "sampled"],
        help="whole-catalogue softmax (default), or Lake et al.'s popularity-sampled negatives",
    )
    train.add_argument("--ranker-hops", type=int, help="attention hops (2)")
    train.add_argument("--ranker-width", type=int, help="attention width (64)")
    train.add_argument("--ranker-epochs", type=int, help="ranking model epochs (20)")
    train.add_argument("--seed", type=int, help="random seed (0)")
    train.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="RMSE/MAE of an artifact on a test file")
    evaluate.add_argument("--artifact", type=Path, required=True)
    evaluate.add_argument("--test", type=Path, required=True)
    evaluate.add_argument("--train", type=Path, help="histories (and fit baselines on it)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(run=_evaluate)


def _rating_scale(text: str):  # noqa: ANN202 - RatingScale is imported when parsed
    from models.data.table import RatingScale

    try:
        return RatingScale.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fetch(args: argparse.Namespace) -> int:
    from models.data.fetch import fetch_movielens_100k

    folder = fetch_movielens_100k(args.dest)
    print(folder)
    return 0


def _train(args: argparse.Namespace) -> int:
    from models.data.table import DataError

    try:
        return _train_from(args)
    except DataError as exc:  # names the file and line, or says what the data lacks
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train_from(args: argparse.Namespace) -> int:
    from models.data.readers import MOVIELENS_SCALE, read_items, read_ratings
    from models.data.table import Catalogue
    from models.training.configs import PRESETS, given
    from models.training.pipeline import build_artifact

    rating, ranking = PRESETS[args.preset]
    rating = given(
        rating,
        model=given(rating.model, head=args.head, dim=args.dim, biases=args.biases,
                    implicit=args.implicit, opinion_attention=args.opinion_attention),
        max_epochs=args.max_epochs, seed=args.seed, device=args.device,
    )
    ranking = given(
        ranking,
        model=given(ranking.model, hops=args.ranker_hops, width=args.ranker_width),
        objective=args.ranker_objective, max_epochs=args.ranker_epochs, seed=args.seed,
        device=args.device,
    )
    scale = args.rating_scale or MOVIELENS_SCALE
    table, report = read_ratings(args.train, scale=scale, require_rating=False)
    if not report.rated:
        print(
            f"{args.train}: no rating column: interactions; training the ranking model alone "
            f"(no rating model, rating flags ignored; each interaction counts as {scale.high:g})",
            file=sys.stderr,
        )
    catalogue = read_items(args.items) if args.items else Catalogue.empty()
    built = build_artifact(
        table,
        catalogue,
        args.out,
        scale,
        rating if report.rated else None,
        ranking,
        progress=not args.no_progress,
        train_path=args.train,
        extra_metrics={"duplicates_replaced": report.duplicates_replaced},
    )
    rated, ranked = built.rating, built.ranking
    rating_part = "no rating model (interactions)"
    if rated is not None:
        rating_part = (f"validation RMSE {rated.validation_rmse:.4f} "
                       f"(epoch {rated.best_epoch}, {rated.seconds:.0f} s)")
    beta, gamma = ranked.model.config.item_item_weight, ranked.model.config.item_item_unliked
    term = ("no item-to-item term" if beta is None
            else f"item-to-item beta {beta:g}, unliked weight {gamma:g}")
    print(
        f"wrote {args.out}: {rating_part}, ranker validation NDCG@10 "
        f"{ranked.validation_ndcg:.4f} (epoch {ranked.best_epoch}, {term}, "
        f"{ranked.seconds:.0f} s), on {ranked.device}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.artifact import load_artifact
    from models.data.readers import read_ratings
    from models.evaluation.rating import evaluate

    artifact = load_artifact(args.artifact, args.device)
    if artifact.rating_model is None:
        print(f"error: {args.artifact} was trained on interactions: it has no rating model "
              "to measure RMSE of", file=sys.stderr)
        return 2
    history_path = args.train or artifact.train_path
    if history_path is None or not history_path.is_file():
        print(
            f"error: histories needed: pass --train (the manifest's {history_path} is gone)",
            file=sys.stderr,
        )
        return 2
    history_table, _ = read_ratings(history_path, scale=artifact.scale)
    if args.train is None and history_table.fingerprint() != artifact.data_fingerprint:
        print(f"error: {history_path} changed since training; pass --train", file=sys.stderr)
        return 2
    test, _ = read_ratings(args.test, scale=artifact.scale)
    report = evaluate(
        artifact, history_table, test, with_baselines=args.train is not None, device=args.device
    )
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0
