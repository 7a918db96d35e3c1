"""FAISS over the ranker's frozen item embeddings: similar items and rank candidates.

Items are compared by cosine similarity of those embeddings (co-occurrence vectors beside
the rating scorer's structure table M): close items are ones rated by the same people, and
ones the attention treats alike. One factory builds the index: exact inner product
for small catalogues, IVF (nlist = 4 sqrt(n), nprobe probes) beyond `exact_below` items.
"""

from __future__ import annotations

import math

import faiss
import numpy as np


def build_index(vectors: np.ndarray, exact_below: int = 50_000, nprobe: int = 16) -> faiss.Index:
    """vectors (N, E) float32, L2-normalised by the caller; returns an inner-product index
    whose ids are the rows' item indices, so items can be replaced and added later."""
    n, dim = vectors.shape
    ids = np.arange(n, dtype=np.int64)
    if n < exact_below:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        nlist = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = nprobe
    index.add_with_ids(vectors, ids)
    return index


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.ascontiguousarray(embeddings / np.maximum(norms, 1e-12), np.float32)


class ItemIndex:
    """One model version's index. Folded items are upserted (FAISS ids are item indices),
    never rebuilt; every snapshot of the version shares it and drops ids it does not know.
    Only the event loop's thread touches it, so searches and upserts never overlap."""

    def __init__(self, embeddings: np.ndarray, item_bias: np.ndarray | None):
        self.vectors = _normalised(embeddings)
        self.index = build_index(self.vectors)
        # Items by learned bias, best first: what the scorer favours regardless of taste.
        self.by_bias = np.argsort(-item_bias) if item_bias is not None else np.arange(0)

    def upsert(self, indices: np.ndarray, embeddings: np.ndarray, item_bias: np.ndarray) -> None:
        """Adds or replaces the vectors of `indices` (appended items come after the rest)."""
        vectors = _normalised(embeddings)
        grown = np.zeros((max(len(self.vectors), int(indices.max()) + 1), vectors.shape[1]),
                         np.float32)
        grown[: len(self.vectors)] = self.vectors
        grown[indices] = vectors
        self.index.remove_ids(indices.astype(np.int64))
        self.index.add_with_ids(vectors, indices.astype(np.int64))
        self.vectors = grown
        self.by_bias = np.argsort(-item_bias)

    def similar(
        self, item: int, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest items to `item` (itself excluded) among `allowed` ((n,) bool by
        item index: what the asking snapshot knows and has not retired; all when None)."""
        allowed = self._everything(allowed)
        wanted = k + 1 + int((~allowed).sum())
        scores, items = self.index.search(self.vectors[item : item + 1], wanted)
        items, scores = items[0], scores[0]
        keep = (items != item) & (items >= 0) & (items < len(allowed))
        keep[keep] &= allowed[items[keep]]
        return items[keep][:k], scores[keep][:k]

    def candidates(self, queries: np.ndarray, per_query: int, popular: int,
                   allowed: np.ndarray | None = None) -> np.ndarray:
        """Union of each query item's neighbours and the `popular` top-bias items, among
        `allowed` (as in `similar`)."""
        allowed = self._everything(allowed)
        found = [self.by_bias[:popular]]
        if len(queries):
            _, items = self.index.search(self.vectors[queries], per_query)
            found.append(items[items >= 0].ravel())
        pool = np.unique(np.concatenate(found)).astype(np.int64)
        pool = pool[pool < len(allowed)]
        return pool[allowed[pool]]

    def _everything(self, allowed: np.ndarray | None) -> np.ndarray:
        return np.ones(len(self.vectors), bool) if allowed is None else allowed
