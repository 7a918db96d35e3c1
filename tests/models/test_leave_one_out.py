"""Column sums with each column left out, against summing what is left directly."""

from __future__ import annotations

import torch

from models.networks.leave_one_out import row_sums_without, sums_without


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


def test_row_sums_without_each_column_equal_the_sums_of_what_is_left() -> None:
    torch.manual_seed(0)
    rows = torch.randn(5, 7, dtype=torch.float64)
    for positions in (torch.arange(7), torch.tensor([5, 0, 6]), torch.tensor([2])):
        found = row_sums_without(rows, positions)
        assert found.shape == (5, 1 + len(positions))
        assert torch.allclose(found[:, 0], rows.sum(1))
        for v, p in enumerate(positions.tolist(), start=1):
            assert torch.allclose(found[:, v], rows.sum(1) - rows[:, p])


def test_row_sums_without_keep_a_dominant_column_s_neighbours_exact() -> None:
    """Leaving out a column a billion times the others' size leaves their sum as it is,
    which a total less the column would round away in float32."""
    rows = torch.tensor([[1e9, 1.0, 2.0, 3.0]], dtype=torch.float32)
    assert row_sums_without(rows, torch.arange(4))[0, 1].item() == 6.0


def test_row_sums_without_of_one_or_no_column() -> None:
    one = torch.tensor([[4.0], [2.0]])
    assert row_sums_without(one, torch.tensor([0])).tolist() == [[4.0, 0.0], [2.0, 0.0]]
    none = torch.zeros(3, 0)
    assert row_sums_without(none, torch.zeros(0, dtype=torch.long)).tolist() == [[0.0]] * 3
