"""SASRec, the sequential peer: it learns a planted next-item rule, reads only the past,
and scores the same alone as in a batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.sasrec_peer import (
    Sasrec,
    SasrecConfig,
    left_padded,
    next_item_scores,
    train_sasrec,
)

N_ITEMS = 20
SMALL = SasrecConfig(hidden=32, dropout=0.0, max_length=16, lr=1e-2, batch_size=16)


def planted(users: int, length: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Sequences where the next item is always successor[previous], from random starts."""
    rng = np.random.default_rng(seed)
    successor = np.random.default_rng(0).permutation(N_ITEMS)
    sequences = []
    for _ in range(users):
        items = [int(rng.integers(N_ITEMS))]
        for _ in range(length - 1):
            items.append(int(successor[items[-1]]))
        sequences.append(np.array(items))
    return sequences, successor


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_learns_a_planted_next_item_rule() -> None:
    train, successor = planted(users=60, length=12, seed=1)
    run = train_sasrec(train, N_ITEMS, SMALL, epochs=15)
    test, _ = planted(users=50, length=7, seed=2)
    scores = next_item_scores(run.model, test)
    first = scores.argmax(axis=1)
    truth = successor[[s[-1] for s in test]]
    assert (first == truth).mean() >= 0.9  # chance: 1 in 20


def test_scores_every_item_and_excludes_nothing() -> None:
    model = Sasrec(N_ITEMS, SMALL)
    sequences, _ = planted(users=3, length=5, seed=3)
    scores = next_item_scores(model, sequences)
    assert scores.shape == (3, N_ITEMS)
    assert np.isfinite(scores).all()  # the user's own items too: the task excludes them


def test_a_sequence_scores_the_same_alone_and_in_a_padded_batch() -> None:
    model = Sasrec(N_ITEMS, SMALL)
    sequences = [np.array([3, 1, 4]), np.array([1, 5, 9, 2, 6, 5, 3, 5])]
    together = next_item_scores(model, sequences)
    alone = np.stack([next_item_scores(model, [s])[0] for s in sequences])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


def test_a_position_reads_nothing_after_it() -> None:
    model = Sasrec(N_ITEMS, SMALL).eval()
    tokens = left_padded([np.array([2, 7, 1, 8, 2, 8])], SMALL.max_length)
    changed = tokens.clone()
    changed[0, -1] = 10
    with torch.inference_mode():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[0, :-1], after[0, :-1])
    assert not torch.allclose(before[0, -1], after[0, -1])


def test_the_same_seed_trains_the_same_model() -> None:
    sequences, _ = planted(users=20, length=6, seed=4)
    first = train_sasrec(sequences, N_ITEMS, SMALL, epochs=2).model.state_dict()
    second = train_sasrec(sequences, N_ITEMS, SMALL, epochs=2).model.state_dict()
    for name, weights in first.items():
        torch.testing.assert_close(weights, second[name])
