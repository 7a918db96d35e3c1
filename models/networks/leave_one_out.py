"""Column sums with each column left out in turn: the core of both models' exact
leave-one-out explanations (a history item removed is a column left out). Each sum is
taken over the columns it keeps, never a total minus a column, so leaving out a dominant
column loses no precision."""

from __future__ import annotations

import torch
from torch import Tensor


def sums_without(before: Tensor, now: Tensor, positions: Tensor) -> Tensor:
    """(C, 1 + P, K): the sums over the L columns of `now` (C, L, K), then, for each of
    `positions` (P,), the sums without that column, the columns before it read from
    `before` (what they become once it is gone; `now` itself where nothing changes).

    Exclusive prefix and suffix sums; every position in order (the usual call) takes
    slices of them rather than gathers."""
    c, n, k = now.shape
    zero = now.new_zeros(c, 1, k)
    prefix = before.cumsum(1)  # [:, p]: the columns up to p
    suffix = torch.cat([now.flip(1).cumsum(1).flip(1), zero], dim=1)  # [:, p]: from p on
    every = torch.arange(n, device=positions.device)
    if positions.shape[0] == n and bool((positions == every).all()):
        without = torch.cat([zero, prefix[:, :-1]], dim=1) + suffix[:, 1:]
    else:
        left = torch.cat([zero, prefix], dim=1)
        without = left[:, positions] + suffix[:, positions + 1]
    return torch.cat([suffix[:, :1], without], dim=1)


def sums_kept(rows: Tensor, positions: Tensor) -> Tensor:
    """(1 + P, R): the sums of each of `rows` (R, L) over its L columns, then, for each of
    `positions` (P,), the sums without that column. One matrix product with a keep-mask:
    the rating model's leave-one-out, where removing a column changes no other."""
    keep = rows.new_ones(1 + positions.shape[0], rows.shape[1])
    keep[torch.arange(1, keep.shape[0], device=keep.device), positions] = 0.0
    return keep @ rows.T
