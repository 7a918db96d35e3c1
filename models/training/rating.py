"""Training the rating model: context sampling, losses, early stopping.

Each training example is one rating (u, i, r). Its context is up to `train_context` of the
user's other training ratings, sampled without replacement and never containing i (the
data augmentation of Hutter et al.). Validation uses the deterministic inference path: the
newest `max_context` items of the history, as the service will.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.data.encoded import EncodedRatings, UserTimelines
from models.data.splits import per_user_holdout
from models.data.table import RatingScale
from models.inference.device import resolve_device
from models.inference.scoring import predict_ratings
from models.networks.rating import RatingModel, RatingModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RatingTrainConfig:
    """Everything that decides a training run, the architecture nested as `model`; saved
    in the artifact manifest."""

    model: RatingModelConfig = RatingModelConfig()
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 3
    train_context: int = 64  # sampled context items per example, as in the paper
    # Each example keeps a uniform number of its sampled items between this and
    # train_context, so training also sees the short histories of new users (the paper keeps
    # train_context). None: 1 for the inner-product head, train_context for the MLP heads,
    # each chosen on validation (docs/architecture.md).
    train_context_min: int | None = None
    val_fraction: float = 0.1
    refit: bool = True  # retrain on all data for the best epoch count after early stopping
    seed: int = 0
    device: str = "auto"

    @property
    def shortest_context(self) -> int:
        if self.train_context_min is not None:
            return self.train_context_min
        return 1 if self.model.head == "dot" else self.train_context

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RatingTrainResult:
    model: RatingModel
    validation_rmse: float
    best_epoch: int
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"


def train_rating_model(
    data: EncodedRatings,
    scale: RatingScale = RatingScale(),
    config: RatingTrainConfig = RatingTrainConfig(),
    progress: bool = True,
) -> RatingTrainResult:
    """Fits a rating model on `data`; early-stops on a per-user validation split of it."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    fit_part, val_part = per_user_holdout(data, config.val_fraction, seed=config.seed)

    model, epochs = _fit(fit_part, val_part, scale, config, device, config.max_epochs, progress)
    best = min(epochs, key=lambda e: e["val_rmse"])
    if config.refit:
        # Same recipe, every rating used, for the epoch count validation chose.
        model, _ = _fit(data, None, scale, config, device, best["epoch"], progress)
    model.eval()
    return RatingTrainResult(
        model=model,
        validation_rmse=best["val_rmse"],
        best_epoch=best["epoch"],
        epochs=epochs,
        seconds=time.perf_counter() - started,
        device=str(device),
    )


def _fit(
    fit_part: EncodedRatings,
    val_part: EncodedRatings | None,
    scale: RatingScale,
    config: RatingTrainConfig,
    device: torch.device,
    max_epochs: int,
    progress: bool,
) -> tuple[RatingModel, list[dict]]:
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    users, items, ratings = fit_part.users, fit_part.items, fit_part.ratings
    timelines = fit_part.timelines

    model = RatingModel(config.model, len(fit_part.item_ids), scale).to(device)
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
            loss = _loss(out.logits, out.rating, truth, model)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        record = {"epoch": epoch, "train_loss": total / seen}
        if val_part is not None:
            model.eval()
            record["val_rmse"] = validation_rmse(model, timelines, val_part, device)
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
    logits: torch.Tensor, rating: torch.Tensor, truth: torch.Tensor, model: RatingModel
) -> torch.Tensor:
    """MLP2: cross-entropy over rating classes; dot and MLP1: squared error."""
    if model.config.head == "mlp2":
        classes = torch.round((truth - model.scale.low) / model.scale.step).long()
        return F.cross_entropy(logits[:, 0, :], classes)
    return F.mse_loss(rating[:, 0], truth)


def validation_rmse(
    model: RatingModel, timelines: UserTimelines, part: EncodedRatings, device: torch.device
) -> float:
    """RMSE on `part`, each user's context being their whole training timeline (capped)."""
    order = np.argsort(part.users, kind="stable")
    users, items, truth = part.users[order], part.items[order], part.ratings[order]
    groups = np.split(np.arange(len(users)), np.flatnonzero(np.diff(users)) + 1)
    errors = []
    for chunk in range(0, len(groups), 256):
        batch = groups[chunk : chunk + 256]
        histories = [timelines.history(int(users[g[0]])) for g in batch]
        preds = predict_ratings(model, histories, [items[g] for g in batch], device)
        for g, p in zip(batch, preds, strict=True):
            errors.append(p.astype(np.float64) - truth[g])
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
