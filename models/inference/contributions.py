"""Exact leave-one-out contributions: how much a prediction drops when one history item is
really removed. Attention says where a model looked; this says what each item did.

For one history, C targets and P history positions, one batched pass per model:
- the rating model has no notion of position, so removing an item is leaving it out of
  the context: with its inner-product head every (target, item) product is computed once
  and each variant re-weighs them (`RatingModel.leave_one_out`);
- the ranking model's recency offsets depend on positions: removing an item moves the
  older ones a step closer to the newest, so `RankingModel.leave_one_out` keeps each hop's
  keys and values at two ages, computed once, and the P variants pick per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.history import History, pad_batch
from models.networks.ranking import ItemSide, RankingModel
from models.networks.rating import RatingModel


@dataclass(frozen=True)
class Contributions:
    """For `targets` (C,) over `history` (the newest items the model reads):
    prediction (C,): the score with the whole history (a predicted rating, or a ranking
    logit); positions (P,): the history positions measured; attention (C, P): the model's
    attention on each (the ranker's hops averaged); contribution (C, P): the prediction
    minus the prediction with that item removed."""

    history: History
    targets: np.ndarray
    prediction: np.ndarray
    positions: np.ndarray
    attention: np.ndarray
    contribution: np.ndarray


@torch.inference_mode()
def rating_contributions(
    model: RatingModel, history: History, targets: np.ndarray, positions: np.ndarray,
    device: torch.device,
) -> Contributions:
    rating, attention, without = model.leave_one_out(
        torch.from_numpy(history.items).to(device),
        torch.from_numpy(history.ratings).to(device),
        torch.from_numpy(targets).to(device),
        torch.from_numpy(positions).to(device),
    )
    rating_np = rating.float().cpu().numpy()
    return Contributions(
        history,
        targets,
        rating_np,
        positions,
        attention[:, torch.from_numpy(positions).to(device)].float().cpu().numpy(),
        rating_np[:, None] - without.T.float().cpu().numpy(),
    )


@torch.inference_mode()
def ranking_contributions(
    model: RankingModel, history: History, targets: np.ndarray, positions: np.ndarray,
    device: torch.device, item_side: ItemSide | None = None,
) -> Contributions:
    if len(history) == 0:
        batch = pad_batch([history], [targets], device)
        score = model.score(
            batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, item_side
        )[0].float().cpu().numpy()
        empty = np.zeros((len(targets), 0), np.float32)
        return Contributions(history, targets, score, positions, empty, empty)
    score, attention, without = model.leave_one_out(
        torch.from_numpy(history.items).to(device),
        torch.from_numpy(history.ratings).to(device),
        torch.from_numpy(targets).to(device),
        torch.from_numpy(positions).to(device),
        item_side,
    )
    score_np = score.float().cpu().numpy()
    return Contributions(
        history,
        targets,
        score_np,
        positions,
        attention[:, torch.from_numpy(positions).to(device)].float().cpu().numpy(),
        score_np[:, None] - without.T.float().cpu().numpy(),
    )
