"""Batched inference of the ranker: the seam the service and the evaluations call.

Same padded batches as the rating scorer (models.inference.pad_batch); histories are
capped to the newest `max_history` items, the cap the ranker was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.inference import History, PaddedBatch, pad_batch
from models.ranker import AttentionRanker, ItemSide, RankerOutput


@torch.inference_mode()
def predict_ranking(ranker: AttentionRanker, batch: PaddedBatch) -> RankerOutput:
    """(histories, targets) -> ranking logits (H, C) and attention (H, C, L): for
    explanations, which need the attention maps."""
    return ranker(batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)


@torch.inference_mode()
def ranking_scores(
    ranker: AttentionRanker, batch: PaddedBatch, item_side: ItemSide | None = None
) -> torch.Tensor:
    """(histories, targets) -> ranking logits (H, C), nothing else: what ranking runs.
    `item_side` is `ranker.item_side()`, computed once by whoever scores repeatedly."""
    return ranker.score(
        batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, item_side
    )


@torch.inference_mode()
def catalogue_scores(
    ranker: AttentionRanker,
    histories: Sequence[History],
    max_history: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """(len(histories), n_items) ranking logits of every item, one shared target list."""
    capped = [h.newest(max_history) for h in histories]
    batch = pad_batch(capped, [np.zeros(0, np.int64)] * len(capped), device)
    every_item = torch.arange(ranker.config.n_items, device=batch.hist_items.device)
    scores = ranker.score(batch.hist_items, batch.hist_ratings, batch.hist_mask, every_item)
    return scores.float().cpu().numpy()
