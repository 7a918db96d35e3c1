"""Jin et al.'s VAE-based Bayesian matrix factorisation with cross feedback of user and item
embeddings and attention, as a rating peer (benchmark only; it learns from whole rows of the
rating matrix, so a new user needs a new pass through the encoders, not retraining).

Model (their Sec. 3, Fig. 1, Eq. 7-10), per side (users shown; items mirror it on X^T):

    H   = MLP(x_i)                      observed input: the user's row of X (0 = unrated),
                                        ReLU layers  I_items -> M -> K'
    G   = MLP(z_i)                      latent input: the concatenation of the cross-fed item
                                        embeddings v_j, zeroed where i did not rate j,
                                        ReLU layers  I_items K -> M -> K'
    mu  = Linear([H; G])                L = 0 layers after the concatenation, K outputs
    c   = sum_j att_ij v_j              attention over the items i rated, att_ij from
                                        mu Theta v_j; mu := Linear([mu; c])
    s^2 likewise, its own networks and Lambda, then a sigmoid
    u_i = mu + s * eps                  reparametrisation
    x_ij ~ N(u_i . v_j, 1)              decoder: U V^T on the observed entries

Loss (Eq. 7): the squared error of the observed entries in the block plus beta times each
side's KL divergence from N(0, I). Training follows their Algorithm 1: U and V start as
N(0, I) draws; each iteration feeds the previous iteration's U to the item encoders and V to
the user encoders, steps through every (user batch, item batch) block (nested iteration,
B_U = B_V = 100 as they set for ML-1M), then resamples U and V. Predictions are the posterior
means' dot products. Early stopping and refit as in `bench.lookup_embeddings`.

Simplified from the paper: the attention weights are a softmax of mu Theta v_j (their Eq. 9
normalises the raw scores, which may be negative and sum to zero); the variance's sigmoid
comes after its attention layer, so it stays in (0, 1); the loss averages squared errors over
a block's ratings and KL terms over its users and items, rather than summing (beta absorbs
the scale); the prior is N(0, I); one setting from their grid, not a search: K = 25,
K' = 50, M = 100, L' = 1, L = 0 (their grids: K, K' in {10, 15, 25, 50}, L, L' in {0, 1, 2},
M in {10, 25, 50, 100}), beta = 1e-3 (of {1e-5, ..., 1}; on u1's validation split beta = 0.1
was at 0.951 after 20 iterations where 1e-3 reached 0.911 by 14). Their Table 3 figure comes
from a random 70/15/15 split of ML-1M, ours from u1 of ML-100K.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.lookup_embeddings import VAL_FRACTION, train_epochs
from models.data.encoded import EncodedRatings
from models.data.splits import per_user_holdout
from models.data.table import RatingScale


@dataclass(frozen=True)
class CrossFeedbackConfig:
    """Their symbols: K = dim, K' = intermediate, M = hidden, B_U, B_V = batch_users, _items;
    an iteration is one pass of their Algorithm 1's outer loop (an epoch)."""

    dim: int = 25
    intermediate: int = 50
    hidden: int = 100
    beta: float = 1e-3
    batch_users: int = 100
    batch_items: int = 100
    lr: float = 1e-3
    max_iterations: int = 100
    patience: int = 5
    refit: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class SideEncoder(nn.Module):
    """One posterior parameter of one side's embeddings: rows of X (B, W) and the other
    side's cross-fed embeddings (W, K) -> the mean (B, K), or with `variance` the log of a
    sigmoid variance (log sigmoid, so a variance near 0 keeps finite gradients)."""

    def __init__(self, width: int, config: CrossFeedbackConfig, variance: bool):
        super().__init__()
        k, m, k2 = config.dim, config.hidden, config.intermediate
        self.variance = variance
        self.observed = nn.Sequential(nn.Linear(width, m), nn.ReLU(), nn.Linear(m, k2), nn.ReLU())
        # Phi_0 (W K, M), held as (W, K, M): the latent input is block-sparse, so z Phi_0 is
        # a sum over the rated columns of v_j Phi_0[j] and the (B, W K) input is never built.
        self.latent_in = nn.Parameter(torch.randn(width, k, m) / math.sqrt(width * k))
        self.latent_bias = nn.Parameter(torch.zeros(m))
        self.latent = nn.Sequential(nn.ReLU(), nn.Linear(m, k2), nn.ReLU())
        self.fuse = nn.Linear(2 * k2, k)
        self.attention = nn.Parameter(torch.eye(k))  # Theta (or Lambda), (K, K)
        self.merge = nn.Linear(2 * k, k)

    def forward(self, x: Tensor, fed: Tensor) -> Tensor:
        rated = x > 0  # (B, W)
        h = self.observed(x)  # (B, K')
        per_column = torch.einsum("wk,wkm->wm", fed, self.latent_in)  # (W, M)
        g = self.latent(rated.float() @ per_column + self.latent_bias)  # (B, W) x (W, M) -> (B, K')
        out = self.fuse(torch.cat([h, g], dim=-1))  # (B, K)
        scores = (out @ self.attention) @ fed.T  # (B, K) x (K, K) x (K, W) -> (B, W)
        # Softmax over the rated columns; a row that rated nothing attends to nothing (a
        # finite fill keeps its gradient finite, where -inf would give NaN).
        weights = torch.softmax(scores.masked_fill(~rated, -1e9), -1) * rated.any(-1, True)
        out = self.merge(torch.cat([out, weights @ fed], dim=-1))  # [mu; c] (B, 2K) -> (B, K)
        return F.logsigmoid(out) if self.variance else out


class CrossFeedbackVAE(nn.Module):
    """Four encoders (user/item x mean/variance) and the cross-fed samples U (users, K) and
    V (items, K), buffers so the best state on validation keeps the samples it was fed."""

    def __init__(self, n_users: int, n_items: int, config: CrossFeedbackConfig):
        super().__init__()
        self.user_mean = SideEncoder(n_items, config, variance=False)
        self.user_variance = SideEncoder(n_items, config, variance=True)
        self.item_mean = SideEncoder(n_users, config, variance=False)
        self.item_variance = SideEncoder(n_users, config, variance=True)
        self.register_buffer("fed_users", torch.randn(n_users, config.dim))
        self.register_buffer("fed_items", torch.randn(n_items, config.dim))

    def users(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior (mean, log variance) (B, K) of users from their rows of X (B, items)."""
        return self.user_mean(rows, self.fed_items), self.user_variance(rows, self.fed_items)

    def items(self, columns: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior (mean, log variance) (B, K) of items from their columns of X, (B, users)."""
        return self.item_mean(columns, self.fed_users), self.item_variance(columns, self.fed_users)

    @torch.no_grad()
    def resample(self, x: Tensor) -> None:
        """Their Algorithm 1, line 15: new U and V drawn from the current posteriors."""
        self.fed_users, self.fed_items = _sample(*self.users(x)), _sample(*self.items(x.T))

    @torch.no_grad()
    def predict(self, x: Tensor, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n,) posterior-mean dot products for (user, item) index pairs, given X."""
        self.eval()
        u, _ = self.users(x)  # (users, K)
        v, _ = self.items(x.T)  # (items, K)
        return (u[torch.from_numpy(users)] * v[torch.from_numpy(items)]).sum(-1).numpy()


@dataclass
class CrossFeedbackFit:
    model: CrossFeedbackVAE
    ratings: Tensor  # X (users, items) the encoders read at prediction time
    iterations: int
    validation_rmse: float
    seconds: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.model.predict(self.ratings, users, items)


def fit_cross_feedback(
    data: EncodedRatings, scale: RatingScale, config: CrossFeedbackConfig
) -> CrossFeedbackFit:
    """Early-stops on a per-user holdout of `data`, then (with `refit`) retrains on all of
    it for the iterations chosen."""
    started = time.perf_counter()
    fit_part, val_part = per_user_holdout(data, VAL_FRACTION, seed=config.seed)
    model, x, iterations, val_rmse = _train(fit_part, val_part, scale, config, None)
    if config.refit:
        model, x, _, _ = _train(data, None, scale, config, iterations)
    return CrossFeedbackFit(model, x, iterations, val_rmse, time.perf_counter() - started)


def _train(
    train: EncodedRatings,
    val: EncodedRatings | None,
    scale: RatingScale,
    config: CrossFeedbackConfig,
    iterations: int | None,
) -> tuple[CrossFeedbackVAE, Tensor, int, float]:
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    n_users, n_items = len(train.user_ids), len(train.item_ids)
    x = torch.zeros(n_users, n_items)
    x[torch.from_numpy(train.users), torch.from_numpy(train.items)] = torch.from_numpy(
        train.ratings)
    model = CrossFeedbackVAE(n_users, n_items, config)
    # Fused: the encoders hold ~13M weights, and the plain Adam step cost twice the
    # forward and backward passes (0.13 s against 0.06 s per block on one core).
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)

    def one_iteration() -> None:
        model.train()
        user_batches = torch.randperm(n_users, generator=rng).split(config.batch_users)
        item_batches = torch.randperm(n_items, generator=rng).split(config.batch_items)
        for users in user_batches:
            for items in item_batches:
                block = x[users][:, items]  # (B_U, B_V)
                rated = block > 0
                if not rated.any():
                    continue
                u_mean, u_log_var = model.users(x[users])
                v_mean, v_log_var = model.items(x.T[items])
                predicted = _sample(u_mean, u_log_var) @ _sample(v_mean, v_log_var).T
                error = (predicted - block)[rated]
                kl = _kl(u_mean, u_log_var).mean() + _kl(v_mean, v_log_var).mean()
                loss = (error**2).mean() + config.beta * kl
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        model.resample(x)

    chosen, val_rmse = train_epochs(
        model, one_iteration,
        (lambda: _rmse(model, x, val, scale)) if val is not None else None,
        iterations if iterations is not None else config.max_iterations, config.patience)
    return model, x, chosen, val_rmse


def _rmse(model: CrossFeedbackVAE, x: Tensor, part: EncodedRatings, scale: RatingScale) -> float:
    predicted = np.clip(model.predict(x, part.users, part.items), scale.low, scale.high)
    return float(np.sqrt(np.mean((predicted - part.ratings) ** 2)))


def _sample(mean: Tensor, log_variance: Tensor) -> Tensor:
    return mean + (0.5 * log_variance).exp() * torch.randn_like(mean)


def _kl(mean: Tensor, log_variance: Tensor) -> Tensor:
    """(B,) KL divergence of N(mean, diag exp(log_variance)) from N(0, I)."""
    return 0.5 * (log_variance.exp() + mean**2 - 1 - log_variance).sum(-1)
