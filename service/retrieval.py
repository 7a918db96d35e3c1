"""FAISS over the ranker's frozen item embeddings: similar items and rank candidates.

Items are compared by cosine similarity of those embeddings (co-occurrence vectors beside
the rating scorer's structure table M): close items are ones rated by the same people, and
ones the attention treats alike. The index comes with the artifact
(`models/inference/item_index.py`); an artifact without one gets it built at load.

An IVF index's coarse step (each query against every list's centroid) is one matrix
product, done here by torch: FAISS's own BLAS took 19 ms for a rank's 128 queries against
4,000 centroids of 256 floats on this 2-core host, torch 2.8 ms. FAISS then scans the lists
torch chose (`search_preassigned`), so what is found is what `index.search` finds.

A rank's candidates need no search at all when the artifact stores each trained item's
nearest neighbours (`neighbour_table`, found by this index at training time): a history
item's neighbours are a row of that table. Only items whose vectors changed since (folded
in, or folded again) are searched, and are found as neighbours by an exact product
against the history while they are few (`EXACT_FOLDED_MAX`).
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from models.inference.item_index import build_index, normalised

# Folded items compared with a rank's queries by one exact product up to this many; past
# it, every query is searched (the index holds them all).
EXACT_FOLDED_MAX = 20_000


class ItemIndex:
    """One model version's index. Folded items are upserted (FAISS ids are item indices),
    never rebuilt; every snapshot of the version shares it and drops ids it does not know.
    Only the event loop's thread touches it, so searches and upserts never overlap."""

    def __init__(self, embeddings: np.ndarray, item_bias: np.ndarray | None,
                 stored: faiss.Index | None = None, nprobe: int | None = None,
                 neighbours: np.ndarray | None = None):
        """`stored`: the artifact's index of its trained items (copied, so this version's
        upserts never reach the artifact); rows beyond it (folded items) are added.
        `nprobe`: IVF lists searched per query (an exact index has none).
        `neighbours`: the artifact's (n_trained, k) table of what `stored` finds for each
        trained item (its own nprobe), used for candidates of up to k per query."""
        self.vectors = normalised(embeddings)
        self.neighbours = neighbours
        # Items whose table row, or absence from it, is out of date: searched, not looked up.
        trained = len(neighbours) if neighbours is not None else len(self.vectors)
        self._moved = np.arange(trained, len(self.vectors), dtype=np.int64)
        self._is_moved = np.zeros(len(self.vectors), bool)
        self._is_moved[self._moved] = True
        if stored is None:
            self.index = build_index(self.vectors)
        else:
            self.index = faiss.clone_index(stored)
            extra = np.arange(stored.ntotal, len(self.vectors), dtype=np.int64)
            if len(extra):
                self.index.add_with_ids(self.vectors[extra], extra)
        # (E, nlist) centroids of an IVF index, for the coarse step; None for an exact one.
        self._centroids: torch.Tensor | None = None
        if isinstance(self.index, faiss.IndexIVF):
            self.index.nprobe = min(nprobe or self.index.nprobe, self.index.nlist)
            centroids = self.index.quantizer.reconstruct_n(0, self.index.nlist)
            self._centroids = torch.from_numpy(np.ascontiguousarray(centroids.T))
        # Items by learned bias, best first: what the scorer favours regardless of taste.
        self.by_bias = np.argsort(-item_bias) if item_bias is not None else np.arange(0)

    def upsert(self, indices: np.ndarray, embeddings: np.ndarray, item_bias: np.ndarray) -> None:
        """Adds or replaces the vectors of `indices` (appended items come after the rest)."""
        vectors = normalised(embeddings)
        grown = np.zeros((max(len(self.vectors), int(indices.max()) + 1), vectors.shape[1]),
                         np.float32)
        grown[: len(self.vectors)] = self.vectors
        grown[indices] = vectors
        self.index.remove_ids(indices.astype(np.int64))
        self.index.add_with_ids(vectors, indices.astype(np.int64))
        self.vectors = grown
        self._is_moved = np.concatenate(
            [self._is_moved, np.zeros(len(grown) - len(self._is_moved), bool)])
        self._is_moved[indices] = True
        self._moved = np.flatnonzero(self._is_moved)
        self.by_bias = np.argsort(-item_bias)

    def similar(
        self, item: int, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest items to `item` (itself excluded) among `allowed` ((n,) bool by
        item index: what the asking snapshot knows and has not retired; all when None)."""
        allowed = self._everything(allowed)
        wanted = k + 1 + int((~allowed).sum())
        scores, items = self._search(self.vectors[item : item + 1], wanted)
        items, scores = items[0], scores[0]
        keep = (items != item) & (items >= 0) & (items < len(allowed))
        keep[keep] &= allowed[items[keep]]
        return items[keep][:k], scores[keep][:k]

    def candidates(self, queries: np.ndarray, per_query: int, popular: int,
                   retired: np.ndarray | None = None) -> np.ndarray:
        """Union of each query item's neighbours and the `popular` top-bias items, sorted,
        without the `retired` ((n,) bool by item index: what the asking snapshot knows;
        an item beyond it is left out too). Only the pool is looked up in `retired`: a
        whole-catalogue mask per request costs a million-item service more than this."""
        found = [self.by_bias[:popular]]
        if len(queries):
            found += self._neighbours_of(np.asarray(queries, np.int64), per_query)
        pool = np.unique(np.concatenate(found).astype(np.int64))
        known = len(self.vectors) if retired is None else len(retired)
        pool = pool[(pool >= 0) & (pool < known)]
        return pool if retired is None else pool[~retired[pool]]

    def _neighbours_of(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """Each query's k nearest items (flat, -1 for none): from the table where its row
        is current, searched otherwise; the moved items nearest to looked-up queries by an
        exact product (a superset of what a search would add)."""
        table = self.neighbours
        if table is None or k > table.shape[1] or len(self._moved) > EXACT_FOLDED_MAX:
            return [self._search(self.vectors[queries], k)[1].ravel()]
        moved = self._is_moved[queries]
        fresh = queries[~moved]
        found = [table[fresh, :k].ravel()]
        if moved.any():
            found.append(self._search(self.vectors[queries[moved]], k)[1].ravel())
        if len(self._moved) and len(fresh):
            closeness = self.vectors[fresh] @ self.vectors[self._moved].T
            nearest = min(k, len(self._moved))
            top = np.argpartition(-closeness, nearest - 1, axis=1)[:, :nearest]
            found.append(self._moved[top].ravel())
        return found

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`index.search`, an IVF's coarse step by torch (see the module's docstring)."""
        if self._centroids is None:
            return self.index.search(queries, k)
        closeness = torch.from_numpy(queries) @ self._centroids
        scores, lists = torch.topk(closeness, self.index.nprobe, dim=1)
        return self.index.search_preassigned(queries, k, lists.numpy().astype(np.int64),
                                             scores.numpy())

    def _everything(self, allowed: np.ndarray | None) -> np.ndarray:
        return np.ones(len(self.vectors), bool) if allowed is None else allowed
