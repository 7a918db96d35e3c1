"""The FAISS factory: exact search for small catalogues, IVF beyond, and IVF finds what
exact search finds on planted clusters."""

from __future__ import annotations

import faiss
import numpy as np

from models.inference.item_index import build_index, neighbour_table, normalised
from service.retrieval import ItemIndex


def clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors, np.float32)


def test_ivf_recalls_the_exact_neighbours() -> None:
    vectors = clustered(6000, 32, 40)
    exact = build_index(vectors, exact_below=10_000)
    ivf = build_index(vectors, exact_below=1000, nprobe=16)
    assert isinstance(exact, faiss.IndexIDMap2) and isinstance(ivf, faiss.IndexIVFFlat)
    assert ivf.nlist == int(4 * np.sqrt(6000)) and ivf.nprobe == 16
    assert ItemIndex(vectors, np.zeros(6000, np.float32), ivf, nprobe=4).index.nprobe == 4
    queries = vectors[:200]
    _, truth = exact.search(queries, 10)
    _, found = ivf.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.9, recall


def test_the_ivf_coarse_step_by_torch_finds_what_faiss_finds() -> None:
    vectors = clustered(6000, 32, 40)
    ivf = build_index(vectors, exact_below=1000)
    index = ItemIndex(vectors, np.zeros(6000, np.float32), ivf, nprobe=6)
    queries = np.arange(0, 6000, 50)
    ivf.nprobe = 6
    _, expected = ivf.search(vectors[queries], 20)
    pool = index.candidates(queries, 20, popular=0)
    assert np.array_equal(pool, np.unique(expected[expected >= 0]))
    items, _ = index.similar(7, 5)
    assert items.tolist() == [i for i in ivf.search(vectors[7:8], 6)[1][0] if i != 7][:5]
    # More probes than lists: every list, as FAISS's own search clamps them.
    assert ItemIndex(vectors, np.zeros(6000, np.float32), ivf, nprobe=10_000).index.nprobe \
        == ivf.nlist


def test_similar_items_exclude_the_item_and_candidates_add_the_popular() -> None:
    vectors = clustered(300, 16, 5)
    bias = np.zeros(300, np.float32)
    bias[[7, 8]] = 5.0  # the two items with the largest learned bias
    index = ItemIndex(vectors, bias)
    items, similarity = index.similar(3, 5)
    assert 3 not in items and len(items) == 5
    assert np.all(np.diff(similarity) <= 1e-6)  # most similar first
    pool = index.candidates(np.array([3]), 10, popular=2)
    assert {7, 8} <= set(pool.tolist()) and 3 in pool  # its own nearest neighbour is itself
    assert len(index.candidates(np.zeros(0, np.int64), 10, popular=2)) == 2


def test_upserted_items_are_found_without_a_rebuild_and_disallowed_ones_never() -> None:
    vectors = clustered(300, 16, 5)
    bias = np.zeros(300, np.float32)
    index = ItemIndex(vectors, bias)
    # A new item 300, a copy of item 3, and item 5 moved onto item 3 as well.
    index.upsert(np.array([300, 5]), np.stack([vectors[3], vectors[3]]), np.zeros(301, np.float32))
    items, similarity = index.similar(3, 2)
    assert set(items.tolist()) == {300, 5} and np.allclose(similarity, 1.0, atol=1e-5)
    allowed = np.ones(301, bool)
    allowed[300] = False  # retired
    items, _ = index.similar(3, 2, allowed)
    assert 300 not in items and 5 in items
    # A snapshot that knows only the first 300 items never sees item 300.
    assert 300 not in index.candidates(np.array([3]), 20, 0, np.zeros(300, bool))
    assert 300 in index.candidates(np.array([3]), 20, 0)
    retired = np.zeros(301, bool)
    retired[5] = True
    pool = index.candidates(np.array([3]), 20, 0, retired)
    assert 5 not in pool and 300 in pool and np.all(np.diff(pool) > 0)  # sorted, unique



def test_a_stored_index_is_copied_and_learns_the_items_folded_in_since() -> None:
    vectors = clustered(300, 16, 5)
    bias = np.zeros(302, np.float32)
    stored = build_index(vectors)
    grown = np.concatenate([vectors, vectors[[3, 4]]])  # items 300, 301 folded in since
    index = ItemIndex(grown, bias, stored)
    assert index.index is not stored and stored.ntotal == 300 and index.index.ntotal == 302
    items, _ = index.similar(3, 1)
    assert items.tolist() == [300]
    fresh = ItemIndex(grown, bias)
    assert np.array_equal(index.similar(10, 8)[0], fresh.similar(10, 8)[0])


def test_stored_neighbours_give_the_candidates_a_search_gives() -> None:
    vectors = clustered(6000, 32, 40)
    ivf = build_index(vectors, exact_below=1000, nprobe=6)
    table = neighbour_table(ivf, vectors, k=30)
    _, expected = ivf.search(vectors[:100], 30)
    assert table.shape == (6000, 30) and np.array_equal(table[:100], expected)
    bias = np.zeros(6000, np.float32)
    looked_up = ItemIndex(vectors, bias, ivf, nprobe=6, neighbours=table)
    searched = ItemIndex(vectors, bias, ivf, nprobe=6)
    queries = np.arange(0, 6000, 37)
    for per_query in (10, 30, 31):  # 31: more than the table holds, so searched
        assert np.array_equal(looked_up.candidates(queries, per_query, popular=3),
                              searched.candidates(queries, per_query, popular=3))


def test_items_moved_since_the_table_are_searched_and_found() -> None:
    vectors = clustered(3000, 16, 20)
    ivf = build_index(vectors, exact_below=1000, nprobe=4)
    bias = np.zeros(3031, np.float32)
    # Items 3000.. folded in since training: a copy of item 3, then 30 far from it.
    far = normalised(-vectors[3] + 0.5 * clustered(30, 16, 3, seed=1))
    grown = np.concatenate([vectors, vectors[[3]], far])
    index = ItemIndex(grown, bias, ivf, nprobe=4, neighbours=neighbour_table(ivf, vectors, 20))
    pool = index.candidates(np.array([3]), 20, popular=0)
    assert 3000 in pool and 1 <= (pool >= 3000).sum() <= 20  # its nearest 20 folded at most
    # Item 5 folded again onto item 3's place: its table row is stale, so it is searched.
    index.upsert(np.array([5]), vectors[[3]], bias)
    assert set(index.candidates(np.array([3]), 20, popular=0)) >= {5, 3000}
    moved = index.candidates(np.array([5]), 20, popular=0)
    assert {3, 3000} <= set(moved.tolist())
    # A snapshot that knows only the trained items never sees the folded ones.
    assert 3000 not in index.candidates(np.array([3]), 20, 0, np.ones(3000, bool))
