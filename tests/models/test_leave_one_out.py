"""Column sums with each column left out, against summing what is left directly."""

from __future__ import annotations

import torch

from models.networks.leave_one_out import sums_without


def test_sums_without_each_column_equal_the_sums_of_what_is_left() -> None:
    torch.manual_seed(0)
    now, before = torch.randn(7, 3, 4, dtype=torch.float64), torch.randn(7, 3, 4,
                                                                         dtype=torch.float64)
    for positions in (torch.arange(7), torch.tensor([5, 0, 6]), torch.tensor([2])):
        found = sums_without(before, now, positions)
        assert torch.allclose(found[0], now.sum(0))
        for v, p in enumerate(positions.tolist(), start=1):
            left = before[:p].sum(0) + now[p + 1 :].sum(0)
            assert torch.allclose(found[v], left)
