"""Column sums with each column left out in turn: the core of both models' exact
leave-one-out explanations (a history item removed is a column left out). Each sum is
taken over the columns it keeps, never a total minus a column, so leaving out a dominant
column loses no precision."""

from __future__ import annotations

import torch
from torch import Tensor


def sums_without(before: Tensor, now: Tensor, positions: Tensor) -> Tensor:
    """(1 + P, C, K): the sums over the L rows of `now` (L, C, K), then, for each of
    `positions` (P,), the sums without that row, the rows before it read from `before`
    (what they become once it is gone; `now` itself where nothing changes).

    Exclusive prefix and suffix sums along the leading axis, where torch's cumsum runs
    fastest; every position in order (the usual call) adds them in place rather than
    gathering."""
    n = now.shape[0]
    zero = now.new_zeros(1, *now.shape[1:])
    suffix = torch.cat([now.flip(0).cumsum(0).flip(0), zero])  # [p]: the rows from p on
    every = torch.arange(n, device=positions.device)
    if 0 < n == positions.shape[0] and bool((positions == every).all()):
        # [1 + p]: the rows before p (before[:p]), then those after it (suffix[p + 1]).
        out = torch.cat([suffix[:1], zero, before[:-1].cumsum(0)])
        out[1:] += suffix[1:]
        return out
    left = torch.cat([zero, before.cumsum(0)])
    return torch.cat([suffix[:1], left[positions] + suffix[positions + 1]])


def sums_kept(rows: Tensor, positions: Tensor) -> Tensor:
    """(1 + P, R): the sums of each of `rows` (R, L) over its L columns, then, for each of
    `positions` (P,), the sums without that column. One matrix product with a keep-mask:
    the rating model's leave-one-out, where removing a column changes no other."""
    keep = rows.new_ones(1 + positions.shape[0], rows.shape[1])
    keep[torch.arange(1, keep.shape[0], device=keep.device), positions] = 0.0
    return keep @ rows.T
