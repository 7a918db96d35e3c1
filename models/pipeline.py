"""Ratings in, artifact out: the rating scorer, then the ranker on its frozen item tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.artifact import save_artifact
from models.data.table import Catalogue, IdMap, RatingTable
from models.item_embeddings import cooccurrence_embeddings
from models.network import AttentiveScorer
from models.train import TrainConfig, TrainResult, train
from models.train_ranker import RankerTrainConfig, RankerTrainResult, train_ranker


@dataclass(frozen=True)
class Built:
    folder: Path
    rating: TrainResult
    ranking: RankerTrainResult


def frozen_item_embeddings(
    table: RatingTable, item_ids: IdMap, scorer: AttentiveScorer
) -> torch.Tensor:
    """The ranker's frozen input: co-occurrence embeddings (the seed's skip-gram, in closed
    form) beside the rating scorer's structure table M. Measured on ML-100K (temporal
    last-10 split): co-occurrence alone gave NDCG@10 0.136, M alone 0.115, both 0.139."""
    cooccurrence = cooccurrence_embeddings(table, item_ids, scorer.config.dim)
    structure = scorer.structure.weight.detach().cpu()
    return torch.cat([cooccurrence, structure], dim=1)


def build_artifact(
    table: RatingTable,
    catalogue: Catalogue,
    folder: Path,
    config: TrainConfig = TrainConfig(),
    ranker_config: RankerTrainConfig = RankerTrainConfig(),
    progress: bool = True,
    train_path: Path | None = None,
    extra_metrics: dict | None = None,
) -> Built:
    """Trains both scorers on `table` and writes the artifact to `folder`. train_path, when
    given, is recorded so `because evaluate` can find the histories again."""
    rating = train(table, config, progress=progress)
    ranking = train_ranker(
        table,
        rating.item_ids,
        frozen_item_embeddings(table, rating.item_ids, rating.model),
        ranker_config,
        config.scale,
        progress=progress,
    )
    metrics = {
        "validation_rmse": rating.validation_rmse,
        "best_epoch": rating.best_epoch,
        "epochs": rating.epochs,
        "train_seconds": round(rating.seconds, 1),
        "ranker_validation_ndcg_at_10": ranking.validation_ndcg,
        "ranker_best_epoch": ranking.best_epoch,
        "ranker_train_seconds": round(ranking.seconds, 1),
        "device": rating.device,
        "n_ratings": len(table),
        **(extra_metrics or {}),
    }
    train_config = config.to_dict()
    if train_path is not None:
        train_config["train_path"] = str(train_path.resolve())
    save_artifact(
        folder,
        rating.model,
        ranking.model,
        rating.item_ids,
        catalogue,
        train_config=train_config,
        ranker_train_config=ranker_config.to_dict(),
        data_fingerprint=table.fingerprint(),
        metrics=metrics,
    )
    return Built(folder, rating, ranking)
