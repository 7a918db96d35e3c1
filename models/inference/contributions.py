"""Exact leave-one-out contributions: how much a prediction drops when one history item is
really removed. Attention says where a model looked; this says what each item did.

For one history, C targets and P history positions, one batched pass per model:
- the rating model has no notion of position, so removing an item is masking it: one
  history with C x (P + 1) target slots, each slot with its own context mask;
- the ranking model's recency offsets depend on positions, so each of the P variants is a
  real history of L - 1 items (`RankingModel.scores_without`), sharing the items' keys,
  values and the candidates' query side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.history import History, pad_batch
from models.inference.scoring import rating_output
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
    n, c, p = len(history), len(targets), len(positions)
    # Slot (t, 0): target t on the whole history; slot (t, 1 + j): without positions[j].
    context = np.ones((c, p + 1, max(1, n)), bool)
    context[:, np.arange(1, p + 1), positions] = False
    batch = pad_batch([history], [np.repeat(targets, p + 1)], device)
    mask = torch.from_numpy(context.reshape(1, c * (p + 1), -1)).to(device)
    out = rating_output(model, batch, mask)
    rating = out.rating[0].float().cpu().numpy().reshape(c, p + 1)
    attention = out.attention[0].float().cpu().numpy().reshape(c, p + 1, -1)[:, 0, positions]
    return Contributions(
        history, targets, rating[:, 0], positions, attention, rating[:, :1] - rating[:, 1:]
    )


@torch.inference_mode()
def ranking_contributions(
    model: RankingModel, history: History, targets: np.ndarray, positions: np.ndarray,
    device: torch.device, item_side: ItemSide | None = None,
) -> Contributions:
    batch = pad_batch([history], [targets], device)
    full = model(batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)
    # The whole-history score through the same fused kernel as the variants, so that an
    # item that changes nothing contributes exactly nothing.
    score = model.score(
        batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, item_side
    )[0]
    without = torch.zeros(0, len(targets), device=device)  # (P, C)
    if len(positions):
        without = model.scores_without(
            batch.hist_items[0, : len(history)],
            batch.hist_ratings[0, : len(history)],
            batch.targets[0],
            torch.from_numpy(positions).to(device),
            item_side,
        )
    score_np = score.float().cpu().numpy()
    attention = full.attention[0][:, torch.from_numpy(positions).to(device)]
    return Contributions(
        history,
        targets,
        score_np,
        positions,
        attention.float().cpu().numpy(),
        score_np[:, None] - without.T.float().cpu().numpy(),
    )
