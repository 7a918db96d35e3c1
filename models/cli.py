"""`because data fetch`, `because train`, `because evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.train import TrainConfig
from models.train_ranker import RankerTrainConfig


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="fetch demo data")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download a demo data set")
    fetch.add_argument("name", choices=["movielens-100k"])
    fetch.add_argument("--dest", type=Path, default=Path("var/data"))
    fetch.set_defaults(run=_fetch)

    train = commands.add_parser("train", help="train the attentive scorer, write an artifact")
    train.add_argument("--train", type=Path, required=True, help="ratings file (any layout)")
    train.add_argument("--items", type=Path, help="item catalogue file (titles, genres)")
    train.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    defaults = TrainConfig()
    train.add_argument("--head", choices=["dot", "mlp1", "mlp2"], default=defaults.head)
    train.add_argument("--dim", type=int, default=defaults.dim)
    train.add_argument("--epochs", type=int, default=defaults.max_epochs, dest="max_epochs")
    train.add_argument(
        "--no-biases",
        action="store_false",
        dest="biases",
        default=defaults.biases,
        help="use the seed's (r - 3) / 2 values instead of ad hoc residuals",
    )
    train.add_argument(
        "--no-implicit",
        action="store_false",
        dest="implicit",
        default=defaults.implicit,
        help="drop the implicit (which-items) path",
    )
    ranker = RankerTrainConfig()
    train.add_argument(
        "--ranker-objective",
        choices=["softmax", "sampled"],
        default=ranker.objective,
        help="whole-catalogue softmax, or the seed's popularity-sampled negatives",
    )
    train.add_argument("--ranker-hops", type=int, default=ranker.hops)
    train.add_argument("--ranker-width", type=int, default=ranker.width)
    train.add_argument("--ranker-epochs", type=int, default=ranker.max_epochs)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:1, ...")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="RMSE/MAE of an artifact on a test file")
    evaluate.add_argument("--artifact", type=Path, required=True)
    evaluate.add_argument("--test", type=Path, required=True)
    evaluate.add_argument("--train", type=Path, help="histories (and fit baselines on it)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(run=_evaluate)


def _fetch(args: argparse.Namespace) -> int:
    from models.data.fetch import fetch_movielens_100k

    folder = fetch_movielens_100k(args.dest)
    print(folder)
    return 0


def _train(args: argparse.Namespace) -> int:
    from models.data.readers import read_items, read_ratings
    from models.data.table import Catalogue
    from models.pipeline import build_artifact
    from models.train import with_overrides

    config = with_overrides(
        TrainConfig(),
        head=args.head,
        dim=args.dim,
        max_epochs=args.max_epochs,
        biases=args.biases,
        implicit=args.implicit,
        seed=args.seed,
        device=args.device,
    )
    table, report = read_ratings(args.train, scale=config.scale)
    catalogue = read_items(args.items) if args.items else Catalogue.empty()
    built = build_artifact(
        table,
        catalogue,
        args.out,
        config,
        RankerTrainConfig(
            objective=args.ranker_objective,
            hops=args.ranker_hops,
            width=args.ranker_width,
            max_epochs=args.ranker_epochs,
            device=args.device,
            seed=args.seed,
        ),
        progress=not args.no_progress,
        train_path=args.train,
        extra_metrics={"duplicates_replaced": report.duplicates_replaced},
    )
    rating, ranking = built.rating, built.ranking
    print(
        f"wrote {args.out}: validation RMSE {rating.validation_rmse:.4f} "
        f"(epoch {rating.best_epoch}, {rating.seconds:.0f} s), ranker validation NDCG@10 "
        f"{ranking.validation_ndcg:.4f} (epoch {ranking.best_epoch}, {ranking.seconds:.0f} s), "
        f"on {rating.device}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.artifact import load_artifact
    from models.data.readers import read_ratings
    from models.evaluate import evaluate

    artifact = load_artifact(args.artifact, args.device)
    history_path = args.train or Path(artifact.manifest["train_config"]["train_path"])
    if not history_path.is_file():
        print(
            f"error: histories needed: pass --train (manifest's {history_path} is gone)",
            file=sys.stderr,
        )
        return 2
    history_table, _ = read_ratings(history_path)
    if args.train is None and history_table.fingerprint() != artifact.manifest["data_fingerprint"]:
        print(f"error: {history_path} changed since training; pass --train", file=sys.stderr)
        return 2
    test, _ = read_ratings(args.test)
    report = evaluate(
        artifact, history_table, test, with_baselines=args.train is not None, device=args.device
    )
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))
    return 0
