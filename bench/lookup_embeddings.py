"""Hutter et al.'s embeddings without attention: the "simple" and "autoencoder" rows of
their Table II, each under their three heads (benchmark peers: they learn a vector per user).

    simple        user and item lookup tables, randomly initialised (N(0, 0.1^2))
    autoencoder   the same tables initialised from the latent z of a user autoencoder
                  (I_items -> 512 -> E -> 512 -> I_items, ReLU after all but the output) and
                  a movie autoencoder (N_users -> 128 -> E -> 128 -> N_users, sigmoid after
                  every layer), each pre-trained on the training ratings scaled to r / 5 with
                  the RMSE of the observed entries (their Eq. 2), then fine-tuned with the head
    heads         dot    1 + 4 sigmoid(u . m), squared error
                  mlp1   [u, m, u * m] -> 200 -> 100 -> 1 (ReLU), 1 + 4 sigmoid, squared error
                  mlp2   [u, m, u * m] -> 200 -> 100 -> 50 -> 5 classes (ReLU), cross-entropy;
                         predicts the expected rating

Each model is trained with Adam and early-stopped on a per-user 10% validation split of the
training data (the autoencoders too, on the held-out ratings they reconstruct), then refit
on all of it for the epoch counts chosen, as our own trainer does (`train_rating_model`).

What the paper leaves open, chosen here: MLP2's layer sizes (its appendix figure is not in
the text: one layer more than MLP1); how z becomes a table (centred per dimension and scaled
to the random tables' spread: ReLU and sigmoid codes are all positive, so every u . m would
start large and saturate the inner-product head); no weight decay, dropout or per-model
tuning, where the paper tuned each cell.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.data.encoded import EncodedRatings
from models.data.splits import per_user_holdout
from models.data.table import RatingScale, RatingTable
from models.evaluation.rating import UNKNOWN_ITEM_SHRINK
from models.networks.rating import Head

Embedding = Literal["simple", "autoencoder"]

INIT_SD = 0.1  # the random tables' spread, and the one z is scaled to
TOP = 5.0  # the autoencoders see ratings / TOP, as in the paper: 1 -> 0.2, ..., 5 -> 1
VAL_FRACTION = 0.1
MLP1_HIDDEN = (200, 100)
MLP2_HIDDEN = (200, 100, 50)


@dataclass(frozen=True)
class LookupConfig:
    """One cell of the grid and how it trains. dim: 64 or 128 as Table II marks the cell
    (`paper_dim`); for the autoencoder cells it is also the autoencoders' bottleneck."""

    embedding: Embedding = "simple"
    head: Head = "dot"
    dim: int = 64
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 50
    patience: int = 3
    autoencoder_batch: int = 32
    autoencoder_max_epochs: int = 200
    autoencoder_patience: int = 5
    refit: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def paper_dim(embedding: Embedding, head: Head) -> int:
    """Table II's embedding size: 128 where it marks a dagger, else 64."""
    return 128 if embedding == "autoencoder" or head == "mlp1" else 64


class LookupRatingModel(nn.Module):
    """A user table, an item table and a head: (B,) user and item indices -> raw scores
    (B, 1), or (B, levels) class logits for mlp2."""

    def __init__(self, n_users: int, n_items: int, dim: int, head: Head, scale: RatingScale):
        super().__init__()
        self.head, self.scale = head, scale
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        nn.init.normal_(self.users.weight, std=INIT_SD)
        nn.init.normal_(self.items.weight, std=INIT_SD)
        hidden = {"dot": (), "mlp1": MLP1_HIDDEN, "mlp2": MLP2_HIDDEN}[head]
        self.mlp = None if head == "dot" else _mlp(
            3 * dim, hidden, scale.levels if head == "mlp2" else 1)
        self.register_buffer(
            "levels", torch.arange(scale.levels, dtype=torch.float32) * scale.step + scale.low)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        u, m = self.users(users), self.items(items)  # (B, E) each
        if self.mlp is None:
            return (u * m).sum(-1, keepdim=True)  # (B, 1)
        return self.mlp(torch.cat([u, m, u * m], dim=-1))  # (B, 3E) -> (B, out)

    def rating(self, raw: Tensor) -> Tensor:
        """(B, out) raw scores -> (B,) ratings on the scale."""
        if self.head == "mlp2":
            return (torch.softmax(raw, dim=-1) * self.levels).sum(-1)
        return self.scale.low + (self.scale.high - self.scale.low) * torch.sigmoid(raw[:, 0])

    def loss(self, raw: Tensor, truth: Tensor) -> Tensor:
        """MLP2: cross-entropy over the rating classes; the others: squared error."""
        if self.head == "mlp2":
            classes = torch.round((truth - self.scale.low) / self.scale.step).long()
            return F.cross_entropy(raw, classes)
        return F.mse_loss(self.rating(raw), truth)

    @torch.no_grad()
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n,) ratings for known (user, item) index pairs."""
        self.eval()
        raw = self(torch.from_numpy(users), torch.from_numpy(items))
        return self.rating(raw).clamp(self.scale.low, self.scale.high).numpy()


class RatingAutoencoder(nn.Module):
    """width -> hidden -> latent -> hidden -> width; `code` is the latent z (rows, latent)."""

    def __init__(self, width: int, hidden: int, latent: int, sigmoid: bool):
        super().__init__()
        act: type[nn.Module] = nn.Sigmoid if sigmoid else nn.ReLU
        self.encoder = nn.Sequential(
            nn.Linear(width, hidden), act(), nn.Linear(hidden, latent), act())
        decoder: list[nn.Module] = [nn.Linear(latent, hidden), act(), nn.Linear(hidden, width)]
        self.decoder = nn.Sequential(*decoder, *([nn.Sigmoid()] if sigmoid else []))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    @torch.no_grad()
    def code(self, x: Tensor) -> Tensor:
        self.eval()
        return self.encoder(x)


@dataclass(frozen=True)
class Pretrained:
    """An autoencoder's latent z of every row (rows, dim), the epochs it trained and its
    validation RMSE in stars (NaN without validation)."""

    z: Tensor
    epochs: int
    validation_rmse: float


@dataclass(frozen=True)
class Schedule:
    """Epoch counts chosen on validation (autoencoders' 0 where none ran), and the
    validation RMSE at the chosen epoch."""

    epochs: int
    user_autoencoder_epochs: int = 0
    movie_autoencoder_epochs: int = 0
    validation_rmse: float = math.nan


@dataclass
class LookupFit:
    model: LookupRatingModel
    schedule: Schedule
    seconds: float


def fit_lookup(data: EncodedRatings, scale: RatingScale, config: LookupConfig) -> LookupFit:
    """Early-stops on a per-user holdout of `data`, then (with `refit`) retrains on all of
    it for the epochs chosen."""
    started = time.perf_counter()
    fit_part, val_part = per_user_holdout(data, VAL_FRACTION, seed=config.seed)
    model, schedule = _train(fit_part, val_part, scale, config, None)
    if config.refit:
        model, _ = _train(data, None, scale, config, schedule)
    return LookupFit(model, schedule, time.perf_counter() - started)


def train_epochs(
    model: nn.Module,
    one_epoch: Callable[[], None],
    validate: Callable[[], float] | None,
    max_epochs: int,
    patience: int,
) -> tuple[int, float]:
    """(best epoch, its validation RMSE): runs epochs until `patience` of them bring no gain
    and restores the best weights; without `validate`, exactly `max_epochs`, NaN."""
    if validate is None:
        for _ in range(max_epochs):
            one_epoch()
        return max_epochs, math.nan
    best_state, best_rmse, best_epoch = copy.deepcopy(model.state_dict()), math.inf, 0
    for epoch in range(1, max_epochs + 1):
        one_epoch()
        score = validate()
        if score < best_rmse - 1e-5:
            best_state, best_rmse, best_epoch = copy.deepcopy(model.state_dict()), score, epoch
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    return best_epoch, best_rmse


def predict_rows(
    predict_known: Callable[[np.ndarray, np.ndarray], np.ndarray],
    data: EncodedRatings,
    table: RatingTable,
    scale: RatingScale,
) -> np.ndarray:
    """(n,) predictions for `table`'s rows, (user, item) ids looked up in `data`'s maps.
    A pair the model cannot score (an unseen user or item) gets the global mean plus the
    user's shrunk mean residual, as `models.evaluation.rating.predict_table` gives ours."""
    users = np.array([-1 if u is None else u for u in data.user_ids.lookup(table.users)])
    items = np.array([-1 if i is None else i for i in data.item_ids.lookup(table.items)])
    known = (users >= 0) & (items >= 0)
    mean = float(data.ratings.mean())
    residual = np.bincount(data.users, data.ratings - mean, len(data.user_ids))
    count = np.bincount(data.users, minlength=len(data.user_ids))
    shrunk = residual / (count + UNKNOWN_ITEM_SHRINK)
    predicted = mean + np.where(users >= 0, shrunk[users], 0.0)
    if known.any():
        predicted[known] = predict_known(users[known], items[known])
    return np.clip(predicted, scale.low, scale.high)


def rmse_of(model: LookupRatingModel, part: EncodedRatings) -> float:
    predicted = model.predict(part.users, part.items).astype(np.float64)
    return float(np.sqrt(np.mean((predicted - part.ratings) ** 2)))


def _train(
    train: EncodedRatings,
    val: EncodedRatings | None,
    scale: RatingScale,
    config: LookupConfig,
    schedule: Schedule | None,
) -> tuple[LookupRatingModel, Schedule]:
    """One model trained on `train`: early-stopped on `val`, or for `schedule`'s epochs."""
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    n_users, n_items = len(train.user_ids), len(train.item_ids)
    model = LookupRatingModel(n_users, n_items, config.dim, config.head, scale)
    user_epochs = movie_epochs = 0
    if config.embedding == "autoencoder":
        user = pretrain_autoencoder(train, val, config, by_item=False,
                                    epochs=schedule.user_autoencoder_epochs if schedule else None)
        movie = pretrain_autoencoder(train, val, config, by_item=True,
                                     epochs=schedule.movie_autoencoder_epochs if schedule else None)
        model.users.weight.data.copy_(_as_table(user.z))
        model.items.weight.data.copy_(_as_table(movie.z))
        user_epochs, movie_epochs = user.epochs, movie.epochs
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    users, items = torch.from_numpy(train.users), torch.from_numpy(train.items)
    ratings = torch.from_numpy(train.ratings)

    def one_epoch() -> None:
        model.train()
        order = torch.randperm(len(ratings), generator=rng)
        for rows in order.split(config.batch_size):
            loss = model.loss(model(users[rows], items[rows]), ratings[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

    epochs, val_rmse = train_epochs(
        model, one_epoch, (lambda: rmse_of(model, val)) if val is not None else None,
        schedule.epochs if schedule else config.max_epochs, config.patience)
    return model, Schedule(epochs, user_epochs, movie_epochs, val_rmse)


def pretrain_autoencoder(
    train: EncodedRatings,
    val: EncodedRatings | None,
    config: LookupConfig,
    by_item: bool,
    epochs: int | None = None,
) -> Pretrained:
    """The paper's user autoencoder, or movie autoencoder with `by_item`, fitted to `train`
    ratings / 5 with the RMSE of each row's observed entries; early-stopped on how well it
    reconstructs `val`'s ratings, or trained for `epochs`."""
    rows, cols = (train.items, train.users) if by_item else (train.users, train.items)
    n_rows, n_cols = (len(train.item_ids), len(train.user_ids)) if by_item else (
        len(train.user_ids), len(train.item_ids))
    x = torch.zeros(n_rows, n_cols)
    x[torch.from_numpy(rows), torch.from_numpy(cols)] = torch.from_numpy(train.ratings) / TOP
    observed = (x > 0).float()
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    model = (RatingAutoencoder(n_cols, 128, config.dim, sigmoid=True) if by_item
             else RatingAutoencoder(n_cols, 512, config.dim, sigmoid=False))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)

    def one_epoch() -> None:
        model.train()
        for batch in torch.randperm(n_rows, generator=rng).split(config.autoencoder_batch):
            batch = batch[observed[batch].any(1)]  # a row whose ratings are all held out
            seen = observed[batch]
            square = ((model(x[batch]) - x[batch]) ** 2 * seen).sum(1)
            loss = (square / seen.sum(1)).sqrt().mean()  # Eq. 2, averaged over rows
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

    trained, val_rmse = train_epochs(
        model, one_epoch,
        (lambda: _reconstruction_rmse(model, x, val, by_item)) if val is not None else None,
        epochs if epochs is not None else config.autoencoder_max_epochs,
        config.autoencoder_patience)
    return Pretrained(model.code(x), trained, val_rmse)


@torch.no_grad()
def _reconstruction_rmse(
    model: RatingAutoencoder, x: Tensor, part: EncodedRatings, by_item: bool
) -> float:
    """RMSE, in stars, of `part`'s ratings read off the reconstruction of `x` (rows, cols),
    the autoencoder's scaled training input."""
    rows, cols = (part.items, part.users) if by_item else (part.users, part.items)
    model.eval()
    predicted = model(x)[torch.from_numpy(rows), torch.from_numpy(cols)] * TOP
    return float(torch.sqrt(torch.mean((predicted - torch.from_numpy(part.ratings)) ** 2)))


def _as_table(z: Tensor) -> Tensor:
    """z centred per dimension and scaled to the random tables' overall spread."""
    centred = z - z.mean(0, keepdim=True)
    return centred * (INIT_SD / centred.std().clamp(min=1e-8))


def _mlp(features: int, hidden: tuple[int, ...], out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(features, size), nn.ReLU()]
        features = size
    return nn.Sequential(*layers, nn.Linear(features, out))
