"""A user's history as the models see it, and the padding that batches many of them.

Ids are strings outside the models; here an item is a dense index into the artifact's item
order. Training, evaluation, inference and the service all pass histories in this form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class History:
    """One user's rated items as dense indices, oldest first. items (L,) int64, ratings (L,);
    times (L,) int64 Unix seconds when known (the rating model's session offset reads them),
    else None."""

    items: np.ndarray
    ratings: np.ndarray
    times: np.ndarray | None = None

    def newest(self, cap: int) -> History:
        return self[-cap:] if len(self.items) > cap else self

    def without(self, position: int) -> History:
        """This history with one entry left out (what a contribution is measured against)."""
        return self[np.arange(len(self.items)) != position]

    def __getitem__(self, which: slice | np.ndarray) -> History:
        """The entries a slice or a boolean mask selects, times with them."""
        times = None if self.times is None else self.times[which]
        return History(self.items[which], self.ratings[which], times)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class PaddedBatch:
    """H histories of up to L items and up to C targets each, as tensors on one device."""

    hist_items: Tensor  # (H, L) long
    hist_ratings: Tensor  # (H, L) float32
    hist_mask: Tensor  # (H, L) bool
    targets: Tensor  # (H, C) long
    target_mask: Tensor  # (H, C) bool
    # (H, L) and (H, C) int64 Unix seconds: when each history item was rated and when each
    # target's rating is predicted for ((H, 1) where each history has one time); None
    # without `at`. A row with no time or a history
    # without times is predicted for NEVER, before anything was rated: no session offset.
    hist_times: Tensor | None = None
    target_times: Tensor | None = None


def pad_batch(
    histories: Sequence[History],
    targets: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    at: Sequence[np.ndarray | int | None] | None = None,
) -> PaddedBatch:
    """Pads histories and target lists (one per history) into dense tensors.

    at: per history, when its targets' ratings are predicted for (Unix seconds): one time
    for all its targets (serving: now), one per target (evaluation: when each was rated), or
    None (no session offset for that history).
    An empty history gets one masked slot so shapes stay valid; the models then use their
    default user.
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
    times = None
    if at is not None:
        times = tuple(as_tensor(a) for a in _padded_times(histories, at, length, width))
    return PaddedBatch(
        as_tensor(hist_items),
        as_tensor(hist_ratings),
        as_tensor(hist_mask),
        as_tensor(target_items),
        as_tensor(target_mask),
        *(times or ()),
    )


# A time before any rating: what a target without one is predicted for.
NEVER = np.iinfo(np.int64).min // 2


def _padded_times(
    histories: Sequence[History], at: Sequence[np.ndarray | int | None], length: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(H, L) rating times and (H, C) prediction times, 0 where padded, NEVER for a history
    without a time or without times of its own; (H, 1) where no history has one time per
    target, so that serving weighs each history once, not once per candidate."""
    if all(when is None or np.ndim(when) == 0 for when in at):
        width = 1
    hist_times = np.zeros((len(histories), length), np.int64)
    target_times = np.full((len(histories), width), NEVER, np.int64)
    for row, (history, when) in enumerate(zip(histories, at, strict=True)):
        if when is None or history.times is None:
            continue
        hist_times[row, : len(history)] = history.times
        target_times[row] = when if np.ndim(when) == 0 else np.pad(
            np.asarray(when, np.int64), (0, width - len(when)))
    return hist_times, target_times


def chunks_by_length(histories: Sequence[History], size: int) -> list[np.ndarray]:
    """Positions of `histories` shortest first, in chunks of `size`: a chunk padded by
    `pad_batch` then pads to a length near its own, not the longest of all."""
    order = np.argsort([len(h) for h in histories], kind="stable")
    return [order[start : start + size] for start in range(0, len(order), size)]
