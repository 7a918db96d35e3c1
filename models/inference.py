"""The one batched inference function: the seam between the model and everything else.

Evaluation, the service's micro-batcher and its explanations all call `predict`; nothing
else reaches into the network. Inference is deterministic: a history is used whole up to a
cap, newest items kept, never sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.network import AttentiveScorer, ScorerOutput


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU; any other name is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class History:
    """One user's rated items as dense indices, oldest first. items (L,) int64, ratings (L,)."""

    items: np.ndarray
    ratings: np.ndarray

    def newest(self, cap: int) -> History:
        return History(self.items[-cap:], self.ratings[-cap:]) if len(self.items) > cap else self

    def without(self, position: int) -> History:
        """This history with one entry left out (explanations measure what it contributed)."""
        keep = np.arange(len(self.items)) != position
        return History(self.items[keep], self.ratings[keep])


@dataclass(frozen=True)
class PaddedBatch:
    """H histories of up to L items and up to C targets each, as tensors on one device."""

    hist_items: Tensor  # (H, L) long
    hist_ratings: Tensor  # (H, L) float32
    hist_mask: Tensor  # (H, L) bool
    targets: Tensor  # (H, C) long
    target_mask: Tensor  # (H, C) bool
    context_mask: Tensor | None = None  # (H, C, L) bool: per-slot history subset (rating)


def pad_batch(
    histories: Sequence[History],
    targets: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
) -> PaddedBatch:
    """Pads histories and target lists (one per history) into dense tensors.

    An empty history gets one masked slot so shapes stay valid; the scorer then uses the
    default user embedding.
    """
    h = len(histories)
    length = max(1, max(len(x.items) for x in histories))
    width = max(1, max(len(t) for t in targets))
    hist_items = np.zeros((h, length), np.int64)
    hist_ratings = np.zeros((h, length), np.float32)
    hist_mask = np.zeros((h, length), bool)
    target_items = np.zeros((h, width), np.int64)
    target_mask = np.zeros((h, width), bool)
    for row, (history, wanted) in enumerate(zip(histories, targets, strict=True)):
        n = len(history.items)
        hist_items[row, :n] = history.items
        hist_ratings[row, :n] = history.ratings
        hist_mask[row, :n] = True
        target_items[row, : len(wanted)] = wanted
        target_mask[row, : len(wanted)] = True
    as_tensor = lambda a: torch.from_numpy(a).to(device, non_blocking=True)  # noqa: E731
    return PaddedBatch(
        as_tensor(hist_items),
        as_tensor(hist_ratings),
        as_tensor(hist_mask),
        as_tensor(target_items),
        as_tensor(target_mask),
    )


@torch.inference_mode()
def predict(model: AttentiveScorer, batch: PaddedBatch) -> ScorerOutput:
    """(histories, targets) -> predicted ratings (H, C) and attention (H, C, L).

    Padded target slots hold meaningless values; callers read only the first len(targets)
    of each row.
    """
    return model(
        batch.hist_items,
        batch.hist_ratings,
        batch.hist_mask,
        batch.targets,
        batch.target_mask,
        batch.context_mask,
    )


def predict_ratings(
    model: AttentiveScorer,
    histories: Sequence[History],
    targets: Sequence[np.ndarray],
    max_context: int,
    device: torch.device | str = "cpu",
) -> list[np.ndarray]:
    """Convenience over `predict`: one float32 array of ratings per history, on the CPU."""
    capped = [h.newest(max_context) for h in histories]
    out = predict(model, pad_batch(capped, targets, device))
    ratings = out.rating.float().cpu().numpy()
    return [ratings[row, : len(t)] for row, t in enumerate(targets)]
