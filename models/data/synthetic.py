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


@dataclass(frozen=True)
class ShopData:
    """A large planted catalogue: users "u{u}", items "i{i}", item i in cluster
    item_cluster[i]; user_clusters (n_users, tastes) are the clusters each user likes."""

    table: RatingTable
    item_cluster: np.ndarray
    user_clusters: np.ndarray


def shop_ratings(
    n_users: int = 100_000,
    n_items: int = 1_000_000,
    n_ratings: int = 10_000_000,
    items_per_cluster: int = 1_000,
    tastes: int = 5,
    on_taste: float = 0.8,
    popularity_skew: float = 1.0,
    noise: float = 0.5,
    seed: int = 0,
) -> ShopData:
    """A shop-sized catalogue with planted structure, in memory proportional to the ratings
    (never users x items): items in clusters of `items_per_cluster`; within a cluster and
    across clusters, popularity falls as rank^-popularity_skew (a Zipf law, as in real
    catalogues); each user likes `tastes` clusters, drawn by cluster popularity, and picks
    from them with probability `on_taste`, else from the whole catalogue by popularity.
    Ratings are near LIKED on a liked cluster and near DISLIKED elsewhere, plus the item's
    quality and noise; each user's count is log-normal around n_ratings / n_users (at least
    5). A user's repeated picks of one item are kept once, so the table holds somewhat
    fewer than `n_ratings` rows."""
    rng = np.random.default_rng(seed)
    n_clusters = max(2, n_items // items_per_cluster)
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters)
    # Popularity: each item's Zipf weight by its rank in a random global order.
    weight = (rng.permutation(n_items) + 1.0) ** -popularity_skew
    by_cluster = np.argsort(item_cluster, kind="stable")  # items grouped by cluster
    starts = np.searchsorted(item_cluster[by_cluster], np.arange(n_clusters + 1))
    within = np.cumsum(weight[by_cluster])  # cumulative weight, cluster after cluster
    cluster_weight = np.diff(np.concatenate([[0.0], within[starts[1:] - 1]]))
    quality = rng.normal(0.0, QUALITY_SD, n_items)
    user_clusters = _weighted_draws(rng, cluster_weight, (n_users, tastes))

    mean = n_ratings / n_users
    counts = np.maximum(5, rng.lognormal(np.log(mean) - 0.5, 1.0, n_users)).astype(np.int64)
    counts = np.minimum(counts, n_items)
    user = np.repeat(np.arange(n_users), counts)
    cluster = user_clusters[user, rng.integers(0, tastes, len(user))]
    off_taste = rng.random(len(user)) >= on_taste
    cluster[off_taste] = _weighted_draws(rng, cluster_weight, int(off_taste.sum()))
    # An item of `cluster` by popularity: a uniform point in the cluster's weight range.
    low = np.where(starts[cluster] > 0, within[starts[cluster] - 1], 0.0)
    point = low + rng.random(len(user)) * (within[starts[cluster + 1] - 1] - low)
    item = by_cluster[np.minimum(np.searchsorted(within, point), n_items - 1)]
    _, first = np.unique(user * n_items + item, return_index=True)
    first.sort()  # keeps each user's picks in the order made
    user, item = user[first], item[first]
    liked = (user_clusters[user] == item_cluster[item][:, None]).any(axis=1)
    raw = np.where(liked, LIKED, DISLIKED) + quality[item] + rng.normal(0.0, noise, len(item))
    step = np.arange(len(user)) - np.searchsorted(user, user)  # position in the user's list
    user_ids = np.char.add("u", np.arange(n_users).astype(str))
    item_ids = np.char.add("i", np.arange(n_items).astype(str))
    table = RatingTable(
        users=user_ids[user],
        items=item_ids[item],
        ratings=np.clip(np.round(raw), 1, 5).astype(np.float32),
        timestamps=(START + STEP * step + user % STEP).astype(np.int64),
    )
    return ShopData(table, item_cluster, user_clusters)


def _weighted_draws(rng: np.random.Generator, weight: np.ndarray, shape) -> np.ndarray:
    """Indices drawn with probability proportional to `weight`, with replacement."""
    cumulative = np.cumsum(weight)
    points = rng.random(shape) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, points), len(weight) - 1)
