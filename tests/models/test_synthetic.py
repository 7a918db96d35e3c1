"""Planted data really has the structure the model tests rely on, and is reproducible."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.data.synthetic import PlantedData, planted_ratings, shop_ratings


@pytest.fixture(scope="module")
def data() -> PlantedData:
    return planted_ratings(n_users=200, n_items=90, n_clusters=3, seed=7)


def liked_mask(data: PlantedData) -> np.ndarray:
    users = np.array([int(u[1:]) for u in data.table.users])
    items = np.array([int(i[1:]) for i in data.table.items])
    return data.user_likes[users, data.item_cluster[items]]


def test_shapes_ids_and_rating_values(data: PlantedData) -> None:
    table = data.table
    assert data.item_cluster.shape == (90,) and set(data.item_cluster.tolist()) == {0, 1, 2}
    assert data.user_likes.shape == (200, 3) and data.user_likes.dtype == bool
    assert set(table.users) == {f"u{u}" for u in range(200)}
    assert set(table.items) <= {f"i{i}" for i in range(90)}
    assert set(table.ratings.tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert table.ratings.dtype == np.float32 and table.timestamps.dtype == np.int64
    pairs = list(zip(table.users.tolist(), table.items.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    counts = Counter(table.users.tolist())
    assert 15 <= min(counts.values()) and max(counts.values()) <= 40


def test_every_user_likes_and_dislikes_and_rates_every_cluster(data: PlantedData) -> None:
    assert data.user_likes.any(axis=1).all() and (~data.user_likes).any(axis=1).all()
    for user in range(200):
        items = data.table.items[data.table.users == f"u{user}"]
        clusters = {int(data.item_cluster[int(i[1:])]) for i in items}
        assert clusters == {0, 1, 2}, user


def test_even_short_histories_cover_every_cluster() -> None:
    sparse = planted_ratings(n_users=50, n_items=120, n_clusters=6, ratings_per_user=(6, 7))
    for user in range(50):
        items = sparse.table.items[sparse.table.users == f"u{user}"]
        assert {int(sparse.item_cluster[int(i[1:])]) for i in items} == set(range(6)), user


def test_liked_clusters_are_rated_far_above_disliked_ones(data: PlantedData) -> None:
    liked = liked_mask(data)
    ratings = data.table.ratings
    assert ratings[liked].mean() > 4.3
    assert ratings[~liked].mean() < 2.2
    # and within users: a user's mean says little, the target's cluster says a lot
    gaps = []
    for user in range(200):
        mine = data.table.users == f"u{user}"
        gaps.append(ratings[mine & liked].mean() - ratings[mine & ~liked].mean())
    assert min(gaps) > 1.5


def test_liked_clusters_are_picked_more_often(data: PlantedData) -> None:
    users = np.array([int(u[1:]) for u in data.table.users])
    liked_share_of_catalogue = data.user_likes[users].mean(axis=1)  # clusters are equal-sized
    assert liked_mask(data).mean() > liked_share_of_catalogue.mean() + 0.1
    unbiased = planted_ratings(n_users=200, n_items=90, n_clusters=3, pick_bias=1.0, seed=7)
    users = np.array([int(u[1:]) for u in unbiased.table.users])
    share = unbiased.user_likes[users].mean(axis=1).mean()
    assert abs(liked_mask(unbiased).mean() - share) < 0.03


def test_timestamps_increase_within_each_user(data: PlantedData) -> None:
    for user in range(200):
        stamps = data.table.timestamps[data.table.users == f"u{user}"]
        assert (np.diff(stamps) > 0).all()


def test_catalogue_names_the_cluster(data: PlantedData) -> None:
    assert data.catalogue.title("i17") == "Item 17 (c2)"
    assert data.catalogue.genres["i17"] == ["c2"]
    assert len(data.catalogue.titles) == 90
    assert all(data.catalogue.genres[f"i{i}"] == [f"c{c}"] for i, c in enumerate(data.item_cluster))


def test_same_seed_same_data_other_seed_other_data(data: PlantedData) -> None:
    again = planted_ratings(n_users=200, n_items=90, n_clusters=3, seed=7)
    assert again.table.fingerprint() == data.table.fingerprint()
    np.testing.assert_array_equal(again.user_likes, data.user_likes)
    other = planted_ratings(n_users=200, n_items=90, n_clusters=3, seed=8)
    assert other.table.fingerprint() != data.table.fingerprint()


def test_noise_only_blurs_the_structure() -> None:
    clean = planted_ratings(n_users=50, noise=0.0, seed=1)
    noisy = planted_ratings(n_users=50, noise=1.0, seed=1)
    assert clean.table.fingerprint() != noisy.table.fingerprint()
    np.testing.assert_array_equal(clean.user_likes, noisy.user_likes)
    np.testing.assert_array_equal(clean.table.items, noisy.table.items)
    assert set(clean.table.ratings[liked_mask(clean)].tolist()) <= {4.0, 5.0}


def test_refuses_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        planted_ratings(n_clusters=1)
    with pytest.raises(ValueError, match="ratings_per_user"):
        planted_ratings(n_items=30, ratings_per_user=(15, 40))


def test_a_shop_catalogue_has_popularity_skew_and_users_stay_on_their_tastes() -> None:
    shop = shop_ratings(n_users=2_000, n_items=20_000, n_ratings=60_000, items_per_cluster=200,
                        tastes=3, seed=3)
    table = shop.table
    users = np.char.lstrip(table.users.astype(str), "u").astype(np.int64)
    items = np.char.lstrip(table.items.astype(str), "i").astype(np.int64)
    pairs = users * 20_000 + items
    assert len(np.unique(pairs)) == len(pairs)  # one row per (user, item)
    assert 30_000 < len(table) <= 60_000 * 1.2
    counts = np.sort(np.bincount(items, minlength=20_000))[::-1]
    assert counts[:200].sum() > 0.2 * len(table)  # the top 1% of items: a fifth of the picks
    on_taste = (shop.user_clusters[users] == shop.item_cluster[items][:, None]).any(axis=1)
    # on_taste 0.8 of the picks; repeated picks, dropped, are more often on taste
    assert 0.6 < on_taste.mean() < 0.9
    assert table.ratings[on_taste].mean() > 4.2 and table.ratings[~on_taste].mean() < 2.2
    order = np.lexsort((table.timestamps, users))
    assert (np.diff(users[order]) >= 0).all()
    again = shop_ratings(n_users=2_000, n_items=20_000, n_ratings=60_000, items_per_cluster=200,
                         tastes=3, seed=3)
    assert np.array_equal(again.table.items, table.items)
