"""Planted ratings for fast, deterministic tests: the right answers are known in advance.

Items fall into clusters; every user likes some clusters (ratings near 5) and dislikes the
rest (near 1-2), and rates items from every cluster, liked clusters `pick_bias` times as
often as the rest (so what a user picks next, the ranker's target, also has structure).
A user's mean rating says little about a given item: a model has to look at the target's
cluster, and at how the user rated that cluster before, to predict well. That is what
target-dependent attention is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.table import Catalogue, RatingTable

LIKED, DISLIKED = 4.6, 1.6  # mean raw rating before item quality and noise
QUALITY_SD = 0.25  # spread of the per-item offset: some items are a bit better than others
START, STEP = 1_000_000_000, 3_600  # seconds: first rating, and the gap between a user's ratings


@dataclass(frozen=True)
class PlantedData:
    """Users "u{u}" and items "i{i}"; item i is in cluster item_cluster[i] (genre "c{k}")."""

    table: RatingTable
    catalogue: Catalogue
    item_cluster: np.ndarray  # (n_items,) int64 in 0..n_clusters-1
    user_likes: np.ndarray  # (n_users, n_clusters) bool, at least one True and one False per row


def planted_ratings(
    n_users: int = 300,
    n_items: int = 120,
    n_clusters: int = 4,
    ratings_per_user: tuple[int, int] = (15, 40),
    noise: float = 0.3,
    pick_bias: float = 3.0,
    seed: int = 0,
) -> PlantedData:
    """Ratings 1..5 with clustered tastes; each user's count drawn from ratings_per_user."""
    low, high = ratings_per_user
    if n_clusters < 2 or n_items < n_clusters or not n_clusters <= low <= high <= n_items:
        raise ValueError(
            "need 2 <= n_clusters <= ratings_per_user[0] <= ratings_per_user[1] <= n_items, got "
            f"n_clusters={n_clusters}, ratings_per_user={ratings_per_user}, n_items={n_items}"
        )
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(n_items) % n_clusters
    quality = rng.normal(0.0, QUALITY_SD, n_items)
    likes = _tastes(rng, n_users, n_clusters)
    counts = rng.integers(low, high + 1, n_users)

    # Each user's items: one random member of every cluster first, then the rest drawn
    # without replacement, liked clusters weighted by pick_bias (smallest keys are taken:
    # -u^(1/w) is the Efraimidis-Spirakis key for weight w).
    weight = np.where(likes[:, item_cluster], pick_bias, 1.0)
    keys = -(rng.random((n_users, n_items)) ** (1.0 / weight))
    for c in range(n_clusters):
        members = np.flatnonzero(item_cluster == c)
        keys[np.arange(n_users), rng.choice(members, n_users)] -= 1.0
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    chosen = rank < counts[:, None]  # (n_users, n_items)
    # Rating order is a fresh shuffle, so the cluster representatives are not always first.
    time_keys = np.where(chosen, rng.random((n_users, n_items)), np.inf)
    by_time = np.argsort(time_keys, axis=1)  # (n_users, n_items): chosen items first
    position = np.arange(n_items)[None, :]
    in_table = position < counts[:, None]
    user = np.broadcast_to(np.arange(n_users)[:, None], by_time.shape)[in_table]
    item = by_time[in_table]
    step = position.repeat(n_users, axis=0)[in_table]

    raw = np.where(likes[user, item_cluster[item]], LIKED, DISLIKED) + quality[item]
    raw = raw + rng.normal(0.0, noise, len(item))
    table = RatingTable(
        users=np.array([f"u{u}" for u in range(n_users)])[user],
        items=np.array([f"i{i}" for i in range(n_items)])[item],
        ratings=np.clip(np.round(raw), 1, 5).astype(np.float32),
        timestamps=(START + STEP * step + user).astype(np.int64),
    )
    catalogue = Catalogue(
        titles={f"i{i}": f"Item {i} (c{c})" for i, c in enumerate(item_cluster.tolist())},
        genres={f"i{i}": [f"c{c}"] for i, c in enumerate(item_cluster.tolist())},
    )
    return PlantedData(table, catalogue, item_cluster, likes)


def _tastes(rng: np.random.Generator, n_users: int, n_clusters: int) -> np.ndarray:
    """(n_users, n_clusters) bool: a fair coin per cluster, redrawn until mixed."""
    likes = rng.random((n_users, n_clusters)) < 0.5
    unmixed = likes.all(axis=1) | ~likes.any(axis=1)
    while unmixed.any():
        likes[unmixed] = rng.random((int(unmixed.sum()), n_clusters)) < 0.5
        unmixed = likes.all(axis=1) | ~likes.any(axis=1)
    return likes
