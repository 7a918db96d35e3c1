"""Batched forward passes of either network over `History` objects: what evaluation,
training's validation and the `Predictor` call. Inference is deterministic: a history is
used whole up to the model's cap (its newest items), never sampled."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.history import History, PaddedBatch, pad_batch
from models.networks.ranking import ItemSide, RankingModel
from models.networks.rating import HistoryOffset, RatingModel, RatingOutput


@torch.inference_mode()
def rating_output(
    model: RatingModel, batch: PaddedBatch, offset: HistoryOffset | None = None
) -> RatingOutput:
    """Predicted ratings (H, C), calibrated by each history's offset (`offset` where the
    caller already has it), and attention (H, C, L). Padded target slots hold meaningless
    values; callers read only the first len(targets) of each row."""
    times = None
    if batch.hist_times is not None and batch.target_times is not None:
        times = (batch.hist_times, batch.target_times)
    return model(
        batch.hist_items,
        batch.hist_ratings,
        batch.hist_mask,
        batch.targets,
        batch.target_mask,
        calibrated=True,
        offset=offset,
        times=times,
    )


def predict_ratings(
    model: RatingModel,
    histories: Sequence[History],
    targets: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    at: Sequence[np.ndarray | int | None] | None = None,
) -> list[np.ndarray]:
    """One float32 array of predicted ratings per history (its newest `max_context` items),
    as of `at` (per history, one time or one per target; see `pad_batch`)."""
    capped = [h.newest(model.config.max_context) for h in histories]
    out = rating_output(model, pad_batch(capped, targets, device, at))
    ratings = out.rating.float().cpu().numpy()
    return [ratings[row, : len(t)] for row, t in enumerate(targets)]


@torch.inference_mode()
def ranking_scores(
    model: RankingModel, batch: PaddedBatch, item_side: ItemSide | None = None
) -> torch.Tensor:
    """Ranking logits (H, C), comparable within one history only. `item_side` is
    `model.item_side()`, computed once by whoever scores repeatedly."""
    return model.score(
        batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, item_side
    )


@torch.inference_mode()
def catalogue_scores(
    model: RankingModel, histories: Sequence[History], device: torch.device | str = "cpu"
) -> np.ndarray:
    """(len(histories), n_items) ranking logits of every item: one shared target list."""
    capped = [h.newest(model.config.max_history) for h in histories]
    batch = pad_batch(capped, [np.zeros(0, np.int64)] * len(capped), device)
    every_item = torch.arange(model.n_items, device=batch.hist_items.device)
    scores = model.score(batch.hist_items, batch.hist_ratings, batch.hist_mask, every_item)
    return scores.float().cpu().numpy()
