"""Training the attentive scorer: context sampling, losses, early stopping.

Each training example is one rating (u, i, r). Its context is up to `train_context` of the
user's other training ratings, sampled without replacement and never containing i (the
seed's data augmentation). Validation uses the deterministic inference path: the newest
`max_context` items of the history, as the service will.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.data.splits import per_user_holdout
from models.data.table import IdMap, RatingScale, RatingTable
from models.inference import History, predict_ratings, resolve_device
from models.network import AttentiveScorer, Head, ScorerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved in the artifact manifest."""

    dim: int = 128
    head: Head = "dot"
    biases: bool = True
    implicit: bool = True
    hidden: tuple[int, ...] = (200, 100)
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 3
    train_context: int = 64  # sampled context items per example, as in the seed
    # Each example keeps a uniform number of its sampled items between this and
    # train_context, so training also sees the short histories of new users (the seed keeps
    # train_context). None: 1 for the inner-product head, train_context for the MLP heads,
    # each chosen on validation (README, How it works).
    train_context_min: int | None = None
    max_context: int = 512  # newest history items used at inference (deterministic)
    val_fraction: float = 0.1
    refit: bool = True  # retrain on all data for the best epoch count after early stopping
    seed: int = 0
    device: str = "auto"
    rating_low: float = 1.0
    rating_high: float = 5.0
    rating_step: float = 1.0

    @property
    def shortest_context(self) -> int:
        if self.train_context_min is not None:
            return self.train_context_min
        return 1 if self.head == "dot" else self.train_context

    @property
    def scale(self) -> RatingScale:
        return RatingScale(self.rating_low, self.rating_high, self.rating_step)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: AttentiveScorer
    item_ids: IdMap
    validation_rmse: float
    best_epoch: int
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"


class UserTimelines:
    """Every user's training ratings, oldest first, as one padded (U, Lmax) table."""

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray,
        timestamps: np.ndarray,
        n_users: int,
    ):
        order = np.lexsort((timestamps, users))
        users, items, ratings = users[order], items[order], ratings[order]
        counts = np.bincount(users, minlength=n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(users)) - starts[users]
        width = max(1, int(counts.max(initial=0)))
        self.items = np.zeros((n_users, width), np.int64)
        self.ratings = np.zeros((n_users, width), np.float32)
        self.items[users, position] = items
        self.ratings[users, position] = ratings
        self.lengths = counts

    def history(self, user: int) -> History:
        n = self.lengths[user]
        return History(self.items[user, :n], self.ratings[user, :n])


def train(
    table: RatingTable, config: TrainConfig = TrainConfig(), progress: bool = True
) -> TrainResult:
    """Fits a scorer on `table`; early-stops on a per-user validation split of it."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    item_ids = IdMap.from_values(table.items)
    fit_part, val_part = per_user_holdout(table, config.val_fraction, seed=config.seed)

    model, epochs = _fit(fit_part, val_part, item_ids, config, device, config.max_epochs, progress)
    best = min(epochs, key=lambda e: e["val_rmse"])
    if config.refit:
        # Same recipe, every rating used, for the epoch count validation chose.
        model, _ = _fit(table, None, item_ids, config, device, best["epoch"], progress)
    model.eval()
    return TrainResult(
        model=model,
        item_ids=item_ids,
        validation_rmse=best["val_rmse"],
        best_epoch=best["epoch"],
        epochs=epochs,
        seconds=time.perf_counter() - started,
        device=str(device),
    )


def _fit(
    fit_part: RatingTable,
    val_part: RatingTable | None,
    item_ids: IdMap,
    config: TrainConfig,
    device: torch.device,
    max_epochs: int,
    progress: bool,
) -> tuple[AttentiveScorer, list[dict]]:
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    user_ids = IdMap.from_values(fit_part.users)
    users = user_ids.encode(fit_part.users)
    items = item_ids.encode(fit_part.items)
    ratings = fit_part.ratings.astype(np.float32)
    timelines = UserTimelines(users, items, ratings, fit_part.timestamps, len(user_ids))

    model = AttentiveScorer(_scorer_config(config, len(item_ids))).to(device)
    model.global_mean.fill_(float(ratings.mean()))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    t_users = torch.from_numpy(users)
    t_items = torch.from_numpy(items)
    t_ratings = torch.from_numpy(ratings)
    t_hist_items = torch.from_numpy(timelines.items)
    t_hist_ratings = torch.from_numpy(timelines.ratings)
    t_lengths = torch.from_numpy(timelines.lengths)

    epochs: list[dict] = []
    best_state, best_rmse, stale = None, float("inf"), 0
    bar = tqdm(range(1, max_epochs + 1), disable=not progress, desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(t_users), generator=rng)
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            batch = _sample_context(
                t_users[rows],
                t_items[rows],
                t_hist_items,
                t_hist_ratings,
                t_lengths,
                config.train_context,
                rng,
                config.shortest_context,
            )
            hist_items, hist_ratings, hist_mask, targets = (x.to(device) for x in batch)
            truth = t_ratings[rows].to(device)
            out = model(hist_items, hist_ratings, hist_mask, targets[:, None])
            loss = _loss(out.logits, out.rating, truth, model.config)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        record = {"epoch": epoch, "train_loss": total / seen}
        if val_part is not None:
            model.eval()
            record["val_rmse"] = validation_rmse(
                model, timelines, user_ids, item_ids, val_part, config.max_context, device
            )
            bar.set_postfix(val_rmse=f"{record['val_rmse']:.4f}")
            if record["val_rmse"] < best_rmse - 1e-5:
                best_rmse, stale = record["val_rmse"], 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        epochs.append(record)
        log.debug("epoch %s", record)
        if stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, epochs


def _scorer_config(config: TrainConfig, n_items: int) -> ScorerConfig:
    return ScorerConfig(
        n_items=n_items,
        dim=config.dim,
        head=config.head,
        biases=config.biases,
        implicit=config.implicit,
        hidden=config.hidden,
        dropout=config.dropout,
        rating_low=config.rating_low,
        rating_high=config.rating_high,
        rating_step=config.rating_step,
    )


def _sample_context(
    users: torch.Tensor,
    targets: torch.Tensor,
    hist_items: torch.Tensor,
    hist_ratings: torch.Tensor,
    lengths: torch.Tensor,
    n_context: int,
    rng: torch.Generator,
    min_context: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to n_context of each user's items, uniformly without replacement, target excluded;
    with min_context < n_context, each row keeps only a uniform draw of min_context..n_context
    of them.

    Random keys over the padded timeline; invalid slots (padding, the target) get key 2 and
    sort last, so the n smallest keys are a uniform sample of the valid items, and so is
    any prefix of them.
    """
    rows_items = hist_items[users]  # (B, Lmax)
    width = rows_items.shape[1]
    valid = (torch.arange(width)[None, :] < lengths[users][:, None]) & (
        rows_items != targets[:, None]
    )
    keys = torch.rand(rows_items.shape, generator=rng).masked_fill(~valid, 2.0)
    k = min(n_context, width)
    chosen_keys, chosen = torch.topk(keys, k, dim=1, largest=False)
    items = rows_items.gather(1, chosen)
    ratings = hist_ratings[users].gather(1, chosen)
    mask = chosen_keys < 1.5
    if min_context is not None and min_context < n_context:
        keep = torch.randint(min_context, n_context + 1, (len(users), 1), generator=rng)
        mask = mask & (torch.arange(k)[None, :] < keep)
    return items, ratings, mask, targets


def _loss(
    logits: torch.Tensor, rating: torch.Tensor, truth: torch.Tensor, config: ScorerConfig
) -> torch.Tensor:
    """MLP2: cross-entropy over rating classes; dot and MLP1: squared error."""
    if config.head == "mlp2":
        classes = torch.round((truth - config.rating_low) / config.rating_step).long()
        return F.cross_entropy(logits[:, 0, :], classes)
    return F.mse_loss(rating[:, 0], truth)


def validation_rmse(
    model: AttentiveScorer,
    timelines: UserTimelines,
    user_ids: IdMap,
    item_ids: IdMap,
    part: RatingTable,
    max_context: int,
    device: torch.device,
) -> float:
    """RMSE on `part`, each user's context being their whole training timeline (capped)."""
    pairs = zip(part.users, part.items, strict=True)
    known = np.array([u in user_ids and i in item_ids for u, i in pairs], bool)
    part = part.take(known)
    users = user_ids.encode(part.users)
    items = item_ids.encode(part.items)
    order = np.argsort(users, kind="stable")
    users, items, truth = users[order], items[order], part.ratings[order]
    groups = np.split(np.arange(len(users)), np.flatnonzero(np.diff(users)) + 1)
    errors = []
    for chunk in range(0, len(groups), 256):
        batch = groups[chunk : chunk + 256]
        histories = [timelines.history(int(users[g[0]])) for g in batch]
        preds = predict_ratings(model, histories, [items[g] for g in batch], max_context, device)
        for g, p in zip(batch, preds, strict=True):
            errors.append(p.astype(np.float64) - truth[g])
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def with_overrides(config: TrainConfig, **overrides: object) -> TrainConfig:
    """A copy of `config` with the given non-None fields replaced (CLI flags)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
