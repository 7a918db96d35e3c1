"""The FAISS index over the ranker's frozen item embeddings, built once at training time
and stored in the artifact (FAISS's own format, not pickle), so replicas read it at start
instead of clustering a large catalogue again (136 s at a million items).

Items are compared by cosine similarity: the index holds L2-normalised rows, its ids are
the rows' item indices (so items can be replaced and added later). Exact inner product for
small catalogues; IVF beyond `EXACT_BELOW` items (nlist = 4 sqrt(n), `NPROBE` lists
probed): IVF supports the removal that retiring and folding items in need, HNSW does not.

Beside the index, each trained item's nearest `NEIGHBOURS` (`neighbour_table`): a rank's
retrieval is then a row lookup per history item instead of a search, the ~20 ms of CPU a
whole-catalogue rank spent searching at a million items (bench/findings.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

EXACT_BELOW = 50_000
NPROBE = 8  # the service sets its own (BECAUSE_RETRIEVAL_PROBES)
NEIGHBOURS = 50  # stored per item: the service's default neighbours per history item


def normalised(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.ascontiguousarray(embeddings / np.maximum(norms, 1e-12), np.float32)


def build_index(vectors: np.ndarray, exact_below: int = EXACT_BELOW,
                nprobe: int = NPROBE) -> faiss.Index:
    """vectors (N, E) float32, L2-normalised; an inner-product index with ids 0..N-1."""
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


def neighbour_table(index: faiss.Index, vectors: np.ndarray, k: int = NEIGHBOURS,
                    batch: int = 16_384) -> np.ndarray:
    """(N, k) int32: what `index.search` finds for each row of `vectors`, nearest first
    (the item itself among them, -1 where the index holds fewer than k)."""
    table = np.empty((len(vectors), k), np.int32)
    for start in range(0, len(vectors), batch):
        _, found = index.search(vectors[start : start + batch], k)
        table[start : start + batch] = found
    return table


def build_retrieval(embeddings: np.ndarray) -> tuple[faiss.Index, np.ndarray]:
    """What an artifact stores for retrieval: the index over the normalised `embeddings`
    and each item's nearest neighbours in it."""
    vectors = normalised(embeddings)
    index = build_index(vectors)
    return index, neighbour_table(index, vectors)


def write_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read_index(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))
