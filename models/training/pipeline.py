"""Ratings in, artifact out: the rating model, then the ranking model on frozen item
embeddings made partly from the rating model's tables. The table is encoded once.
Interactions without ratings train the ranking model alone."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from models.artifact import save_artifact
from models.data.encoded import EncodedRatings
from models.data.table import Catalogue, RatingScale, RatingTable
from models.inference.item_index import build_retrieval
from models.training.item_embeddings import frozen_item_embeddings
from models.training.ranking import RankingTrainConfig, RankingTrainResult, train_ranking_model
from models.training.rating import RatingTrainConfig, RatingTrainResult, train_rating_model


@dataclass(frozen=True)
class Built:
    folder: Path
    rating: RatingTrainResult | None  # None: trained on interactions alone
    ranking: RankingTrainResult


def build_artifact(
    table: RatingTable,
    catalogue: Catalogue,
    folder: Path,
    scale: RatingScale = RatingScale(),
    rating_config: RatingTrainConfig | None = RatingTrainConfig(),
    ranking_config: RankingTrainConfig = RankingTrainConfig(),
    progress: bool = True,
    train_path: Path | None = None,
    extra_metrics: dict | None = None,
) -> Built:
    """Trains both models on `table` and writes the artifact to `folder`. train_path, when
    given, is recorded so `because evaluate` can find the histories again.

    rating_config None: the table holds interactions (clicks, plays, purchases), its
    ratings all alike: no rating model is trained, the ranker's frozen embeddings are
    co-occurrence alone and it learns no rating levels (there are none to tell apart)."""
    data = EncodedRatings.encode(table)
    rating = None
    if rating_config is not None:
        genres = catalogue.genres_of(data.item_ids.ids)
        rating = train_rating_model(data, scale, rating_config, progress=progress, genres=genres)
    else:
        ranking_config = replace(ranking_config, model=replace(ranking_config.model,
                                                                ratings=False))
    embeddings = frozen_item_embeddings(data, rating.model if rating else None)
    ranking = train_ranking_model(data, embeddings, scale, ranking_config, progress=progress)
    metrics = {}
    if rating is not None:
        metrics = {
            "validation_rmse": rating.validation_rmse,
            "best_epoch": rating.best_epoch,
            "epochs": rating.epochs,
            "train_seconds": round(rating.seconds, 1),
        }
    metrics |= {
        "ranker_validation_ndcg_at_10": ranking.validation_ndcg,
        "ranker_best_epoch": ranking.best_epoch,
        "ranker_train_seconds": round(ranking.seconds, 1),
        # The item-to-item term's beta and gamma and the validation NDCG@10 they were
        # chosen by.
        "ranker_item_item_weight": ranking.model.config.item_item_weight,
        "ranker_item_item_unliked": ranking.model.config.item_item_unliked,
        "ranker_item_item_validation": ranking.item_item_table(),
        "device": (rating or ranking).device,
        "n_ratings": len(table),
        **(extra_metrics or {}),
    }
    source = {"fingerprint": table.fingerprint()}
    if train_path is not None:
        source["train_path"] = str(train_path.resolve())
    index, neighbours = build_retrieval(ranking.model.item_embeddings.cpu().numpy())
    save_artifact(
        folder,
        rating.model if rating else None,
        ranking.model,
        data.item_ids,
        catalogue,
        # The trained model's architecture: training chose its history offset.
        rating_train_config=(replace(rating_config, model=rating.model.config).to_dict()
                             if rating_config and rating else None),
        ranking_train_config=ranking_config.to_dict(),
        data=source,
        metrics=metrics,
        item_index=index,
        item_neighbours=neighbours,
    )
    return Built(folder, rating, ranking)
