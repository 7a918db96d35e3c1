"""Ratings in, artifact out: the rating model, then the ranking model on frozen item
embeddings made partly from the rating model's tables. The table is encoded once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.artifact import save_artifact
from models.data.encoded import EncodedRatings
from models.data.table import Catalogue, RatingScale, RatingTable
from models.inference.item_index import build_index, normalised
from models.training.item_embeddings import frozen_item_embeddings
from models.training.ranking import RankingTrainConfig, RankingTrainResult, train_ranking_model
from models.training.rating import RatingTrainConfig, RatingTrainResult, train_rating_model


@dataclass(frozen=True)
class Built:
    folder: Path
    rating: RatingTrainResult
    ranking: RankingTrainResult


def build_artifact(
    table: RatingTable,
    catalogue: Catalogue,
    folder: Path,
    scale: RatingScale = RatingScale(),
    rating_config: RatingTrainConfig = RatingTrainConfig(),
    ranking_config: RankingTrainConfig = RankingTrainConfig(),
    progress: bool = True,
    train_path: Path | None = None,
    extra_metrics: dict | None = None,
) -> Built:
    """Trains both models on `table` and writes the artifact to `folder`. train_path, when
    given, is recorded so `because evaluate` can find the histories again."""
    data = EncodedRatings.encode(table)
    rating = train_rating_model(data, scale, rating_config, progress=progress)
    ranking = train_ranking_model(
        data, frozen_item_embeddings(data, rating.model), scale, ranking_config, progress=progress
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
    source = {"fingerprint": table.fingerprint()}
    if train_path is not None:
        source["train_path"] = str(train_path.resolve())
    save_artifact(
        folder,
        rating.model,
        ranking.model,
        data.item_ids,
        catalogue,
        rating_train_config=rating_config.to_dict(),
        ranking_train_config=ranking_config.to_dict(),
        data=source,
        metrics=metrics,
        item_index=build_index(normalised(ranking.model.item_embeddings.cpu().numpy())),
    )
    return Built(folder, rating, ranking)
