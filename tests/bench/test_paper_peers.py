"""The papers' peers of bench/paper_checks.py on planted data where the answer is known:
clustered tastes are a low-rank rating matrix, so every peer must beat the global mean on
held-out ratings by a clear margin; and the pieces with exact answers give them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.cross_feedback_vae import CrossFeedbackConfig, SideEncoder, fit_cross_feedback
from bench.lookup_embeddings import (
    LookupConfig,
    fit_lookup,
    predict_rows,
    pretrain_autoencoder,
    train_epochs,
)
from bench.paper_checks import THEIR_TABLE_II, orderings
from models.data.encoded import EncodedRatings
from models.data.splits import per_user_holdout
from models.data.synthetic import planted_ratings
from models.data.table import RatingScale, RatingTable
from models.evaluation.rating import rmse

SCALE = RatingScale()


@pytest.fixture(scope="module")
def planted() -> tuple[EncodedRatings, RatingTable, float]:
    """(training data, held-out table, the global mean's held-out RMSE)."""
    table = planted_ratings(n_users=200, n_items=60, ratings_per_user=(20, 40), seed=3).table
    train, test = per_user_holdout(table, 0.2, seed=1)
    mean_rmse = rmse(np.full(len(test), train.ratings.mean()), test.ratings)
    return EncodedRatings.encode(train), test, mean_rmse


@pytest.mark.parametrize(("embedding", "head"), [("simple", "dot"), ("simple", "mlp2"),
                                                 ("autoencoder", "mlp1")])
def test_lookup_cells_beat_the_global_mean(planted, embedding, head) -> None:
    data, test, mean_rmse = planted
    config = LookupConfig(embedding=embedding, head=head, dim=8, lr=1e-2, batch_size=128,
                          autoencoder_batch=16)
    fit = fit_lookup(data, SCALE, config)
    got = rmse(predict_rows(fit.model.predict, data, test, SCALE), test.ratings)
    assert got < 0.5 * mean_rmse
    assert fit.schedule.epochs >= 1
    assert (fit.schedule.user_autoencoder_epochs > 0) == (embedding == "autoencoder")


@pytest.mark.parametrize("by_item", [False, True])
def test_autoencoders_reconstruct_held_out_ratings_better_than_the_mean(planted, by_item):
    data, _, _ = planted
    fit_part, val_part = per_user_holdout(data, 0.2, seed=2)
    mean_rmse = rmse(np.full(len(val_part), fit_part.ratings.mean()), val_part.ratings)
    config = LookupConfig(dim=16, lr=3e-3, autoencoder_batch=8, autoencoder_patience=10)
    pretrained = pretrain_autoencoder(fit_part, val_part, config, by_item=by_item)
    assert pretrained.validation_rmse < 0.6 * mean_rmse
    rows = len(data.item_ids) if by_item else len(data.user_ids)
    assert pretrained.z.shape == (rows, 16)


def test_the_cross_feedback_vae_beats_the_global_mean(planted) -> None:
    data, test, mean_rmse = planted
    config = CrossFeedbackConfig(dim=8, intermediate=16, hidden=32, batch_users=20,
                                 batch_items=20, lr=3e-3, max_iterations=30, refit=False)
    fit = fit_cross_feedback(data, SCALE, config)
    got = rmse(predict_rows(fit.predict, data, test, SCALE), test.ratings)
    assert got < 0.8 * mean_rmse
    assert fit.validation_rmse < 0.8 * mean_rmse


def test_the_latent_input_is_their_masked_concatenation_times_phi() -> None:
    """Z_U's row i concatenates v_j where i rated j and zeros elsewhere (Jin et al., Sec.
    3.2); the encoder never builds it, and must give what the dense product gives."""
    torch.manual_seed(0)
    config = CrossFeedbackConfig(dim=3, intermediate=4, hidden=5)
    encoder = SideEncoder(width=6, config=config, variance=False)
    x = torch.tensor([[5.0, 0, 3, 0, 0, 1], [0, 0, 0, 0, 0, 0], [2, 4, 0, 0, 1, 0]])
    fed = torch.randn(6, 3)
    z = ((x > 0).float()[:, :, None] * fed[None]).reshape(3, 18)  # (B, W K)
    dense = z @ encoder.latent_in.reshape(18, 5) + encoder.latent_bias
    sparse = (x > 0).float() @ torch.einsum("wk,wkm->wm", fed, encoder.latent_in)
    assert torch.allclose(sparse + encoder.latent_bias, dense, atol=1e-6)
    out = encoder(x, fed)
    assert out.shape == (3, 3) and torch.isfinite(out).all()  # a row with no ratings too


def test_unknown_items_get_the_mean_plus_the_users_shrunk_residual() -> None:
    train = RatingTable(np.array(["a", "a", "b"]), np.array(["x", "y", "x"]),
                        np.array([5.0, 4.0, 3.0], np.float32), np.arange(3, dtype=np.int64))
    data = EncodedRatings.encode(train)
    test = RatingTable(np.array(["a", "a", "c"]), np.array(["x", "new", "y"]),
                       np.zeros(3, np.float32), np.arange(3, dtype=np.int64))
    got = predict_rows(lambda users, items: np.full(len(users), 2.5), data, test, SCALE)
    # mean 4; user a's residuals 1 and 0 over 2 ratings + 5 shrinkage; c is unknown
    assert got == pytest.approx([2.5, 4.0 + 1.0 / 7.0, 4.0])


def test_training_stops_after_patience_and_keeps_the_best_weights() -> None:
    model = nn.Linear(1, 1)
    scores = iter([3.0, 2.0, 1.0, 1.5, 2.5, 0.5])
    epochs = []

    def one_epoch() -> None:
        epochs.append(len(epochs) + 1)
        model.bias.data.fill_(float(len(epochs)))

    best, best_rmse = train_epochs(model, one_epoch, lambda: next(scores), 10, patience=2)
    assert (best, best_rmse, epochs) == (3, 1.0, [1, 2, 3, 4, 5])
    assert model.bias.item() == 3.0
    assert train_epochs(model, one_epoch, None, 2, patience=1)[0] == 2


def test_orderings_read_each_claim_from_both_tables() -> None:
    ours = {f"{e}_{h}": {"rmse": rmse_} for e, h, rmse_ in [
        ("simple", "dot", 0.95), ("simple", "mlp1", 0.94), ("simple", "mlp2", 0.96),
        ("as_written", "dot", 0.96), ("as_written", "mlp1", 0.93), ("as_written", "mlp2", 0.92),
    ]}
    found = orderings(ours, "as_written")
    assert found["attentive beats simple, inner product"] == {"theirs": True, "ours": False}
    assert found["attentive beats simple, MLP2"] == {"theirs": True, "ours": True}
    assert found["best head, simple"] == {"theirs": "MLP2", "ours": "MLP1"}
    assert found["best head, attentive"] == {"theirs": "MLP2", "ours": "MLP2"}
    assert "best head, autoencoder" not in found  # its cells did not run
    assert "attentive beats autoencoder, MLP1" not in found
    assert THEIR_TABLE_II[("autoencoder", "mlp1")] == min(
        THEIR_TABLE_II[("autoencoder", h)] for h in ("dot", "mlp1", "mlp2"))
