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
    """vectors (N, E) float32, L2-normalised by the caller; returns an inner-product index."""
    n, dim = vectors.shape
    if n < exact_below:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = nprobe
    index.add(vectors)
    return index


class ItemIndex:
    def __init__(self, embeddings: np.ndarray, item_bias: np.ndarray | None):
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        self.vectors = np.ascontiguousarray(embeddings / np.maximum(norms, 1e-12), np.float32)
        self.index = build_index(self.vectors)
        # Items by learned bias, best first: what the scorer favours regardless of taste.
        self.by_bias = np.argsort(-item_bias) if item_bias is not None else np.arange(0)

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest items to `item` (itself excluded) and their cosine similarities."""
        scores, items = self.index.search(self.vectors[item : item + 1], k + 1)
        keep = (items[0] != item) & (items[0] >= 0)
        return items[0][keep][:k], scores[0][keep][:k]

    def candidates(self, queries: np.ndarray, per_query: int, popular: int) -> np.ndarray:
        """Union of each query item's neighbours and the `popular` top-bias items."""
        found = [self.by_bias[:popular]]
        if len(queries):
            _, items = self.index.search(self.vectors[queries], per_query)
            found.append(items[items >= 0].ravel())
        return np.unique(np.concatenate(found)).astype(np.int64)
