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

from models.history import History
from models.networks.ranking import ItemSide, RankingModel
from models.networks.rating import HistoryOffset, RatingModel, Times


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
    device: torch.device, offsets: tuple[HistoryOffset, HistoryOffset] | None = None,
    at: int | None = None,
) -> Contributions:
    """offsets: the history offsets of `positions` (`RatingModel.offsets_without`), where
    the caller already computed them; at: when the ratings are predicted for (Unix
    seconds), for the session offset (None: none)."""
    found = model.leave_one_out(*_tensors(history, targets, positions, device), offsets,
                                times_of(history, at, device))
    return _contributions(history, targets, positions, *found)


@torch.inference_mode()
def ranking_contributions(
    model: RankingModel, history: History, targets: np.ndarray, positions: np.ndarray,
    device: torch.device, item_side: ItemSide | None = None,
) -> Contributions:
    found = model.leave_one_out(*_tensors(history, targets, positions, device), item_side)
    return _contributions(history, targets, positions, *found)


def times_of(history: History, at: int | None, device: torch.device) -> Times | None:
    """The rating model's `times` for one history predicted as of `at`: its items' (L,)
    and `at` (1,); None where either is unknown."""
    if at is None or history.times is None:
        return None
    return (torch.from_numpy(np.asarray(history.times, np.int64)).to(device),
            torch.tensor([at], dtype=torch.int64, device=device))


def _tensors(
    history: History, targets: np.ndarray, positions: np.ndarray, device: torch.device
) -> list[torch.Tensor]:
    arrays = (history.items, history.ratings, targets, positions)
    return [torch.from_numpy(a).to(device) for a in arrays]


def _contributions(
    history: History, targets: np.ndarray, positions: np.ndarray,
    whole: torch.Tensor, attention: torch.Tensor, without: torch.Tensor,
) -> Contributions:
    """A model's (C,) whole-history prediction, (C, L) attention and (P, C) predictions
    without each item, as the contributions of `positions`."""
    prediction = whole.float().cpu().numpy()
    return Contributions(
        history,
        targets,
        prediction,
        positions,
        attention.float().cpu().numpy()[:, positions],
        prediction[:, None] - without.T.float().cpu().numpy(),
    )
