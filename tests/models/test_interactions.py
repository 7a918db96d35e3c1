"""An artifact trained on interactions alone (no rating column): the ranking model without
a rating model, said so in the manifest; it loads, ranks (the recommended order is the
ranking order), refuses predicted ratings, and folds new items into the ranker alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.artifact import ArtifactError, load_artifact
from models.data.table import RatingScale
from models.history import History
from models.inference.fold_in import Rater, attribute_prior, fold_in_item, with_items
from models.inference.predictor import ExplainJob, NoRatingModel, Predictor, ScoreJob
from models.manifest import version_of


def test_the_manifest_says_there_is_no_rating_model(interactions_artifact_dir: Path) -> None:
    manifest = json.loads((interactions_artifact_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["rating"] is None
    assert set(manifest["checksums"]) == {"ranker.safetensors", "items.json", "items.faiss",
                                          "neighbours.safetensors"}
    assert not (interactions_artifact_dir / "model.safetensors").exists()
    assert "validation_rmse" not in manifest["metrics"]
    assert manifest["metrics"]["ranker_validation_ndcg_at_10"] > 0
    assert manifest["ranking"]["model"]["ratings"] is False  # no rating levels to learn
    assert manifest["rating_scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}


def test_it_loads_with_the_ranking_model_alone(interactions_artifact_dir: Path) -> None:
    artifact = load_artifact(interactions_artifact_dir)
    assert artifact.rating_model is None and artifact.scale == RatingScale()
    assert len(artifact.item_ids) == artifact.ranking_model.n_items == 120
    assert len(artifact.version) == 12 and artifact.version == version_of(artifact.manifest)
    assert artifact.item_index is not None and artifact.item_index.ntotal == 120
    assert artifact.item_neighbours is not None and artifact.item_neighbours.shape == (120, 50)


def test_a_deleted_ranker_is_still_refused(interactions_artifact_dir: Path, tmp_path: Path
                                           ) -> None:
    copy = Path(shutil.copytree(interactions_artifact_dir, tmp_path / "copy"))
    (copy / "ranker.safetensors").unlink()
    with pytest.raises(ArtifactError, match="ranker.safetensors: missing"):
        load_artifact(copy)


@pytest.fixture(scope="module")
def predictor(interactions_artifact_dir: Path) -> Predictor:
    return Predictor(load_artifact(interactions_artifact_dir), "cpu")


def test_recommended_is_the_ranking_order_and_no_rating_is_predicted(
    predictor: Predictor,
) -> None:
    history = History(np.array([3, 17, 40], np.int64), np.full(3, 5.0, np.float32))
    targets = np.arange(120, dtype=np.int64)
    recommended, ranking = predictor.run([
        ScoreJob(history, targets, "recommended", top=10, explain=True),
        ScoreJob(history, targets, "ranking", top=10, explain=True),
    ])
    assert not predictor.rated
    np.testing.assert_array_equal(recommended.best, ranking.best)
    np.testing.assert_array_equal(recommended.score, ranking.ranking)
    assert np.isnan(recommended.ratings).all()
    np.testing.assert_array_equal(recommended.contributions.contribution,
                                  ranking.contributions.contribution)


@pytest.mark.parametrize("order", [None, "rating"])
def test_a_predicted_rating_is_refused(predictor: Predictor, order: str | None) -> None:
    history = History(np.array([3], np.int64), np.array([5.0], np.float32))
    with pytest.raises(NoRatingModel, match="interactions alone"):
        predictor.run([ScoreJob(history, np.arange(5), order)])
    if order is not None:
        with pytest.raises(NoRatingModel):
            predictor.contributions([ExplainJob(history, np.arange(5), order)])


def test_new_items_fold_into_the_ranker_alone(interactions_artifact_dir: Path) -> None:
    ranker = load_artifact(interactions_artifact_dir).ranking_model
    genres = [["a"] if i % 2 else ["b"] for i in range(ranker.n_items)]
    prior = attribute_prior(None, ranker, genres).item(["a"])
    assert prior.structure.shape == (0,) and prior.implicit is None
    assert prior.ranking_embedding.shape == (ranker.item_embeddings.shape[1],)
    raters = [Rater(History(np.array([k, k + 1], np.int64), np.full(2, 5.0, np.float32)), 5.0)
              for k in range(0, 20, 2)]
    folded = fold_in_item(None, ranker, raters, prior)
    assert folded.source == "folded" and folded.raters == 10
    rating, grown = with_items(None, ranker, [folded])
    assert rating is None and grown.n_items == ranker.n_items + 1
