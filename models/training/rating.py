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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.data.attributes import genre_vocabulary, one_hot, popularity_tags
from models.data.encoded import EncodedRatings, UserTimelines
from models.data.splits import per_user_holdout
from models.data.table import RatingScale
from models.history import History, chunks_by_length, pad_batch
from models.inference.device import resolve_device
from models.inference.scoring import predict_ratings, rating_output
from models.networks.rating import HistoryOffset, RatingModel, RatingModelConfig

log = logging.getLogger(__name__)


SPARSE_ABOVE_ITEMS = 50_000


@dataclass(frozen=True)
class RatingTrainConfig:
    """Everything that decides a training run, the architecture nested as `model`; saved
    in the artifact manifest."""

    model: RatingModelConfig = RatingModelConfig()
    lr: float = 1e-3
    # L2 on every weight, chosen on the validation split of u1 (bench/findings.md): val RMSE
    # 0.8980 at 0, 0.8964 at 1e-5, 0.8947 at 3e-5, 0.8958 at 1e-4.
    weight_decay: float = 3e-5
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 3
    train_context: int = 64  # sampled context items per example, as in the paper
    # Each example keeps a uniform number of its sampled items between this and
    # train_context, so training also sees the short histories of new users (the paper keeps
    # train_context). None: 1 for the inner-product head, train_context for the MLP heads,
    # each chosen on validation (docs/architecture.md).
    train_context_min: int | None = None
    # Sparse gradients for the item tables (lazy Adam: a step updates only the rows its
    # batch touched). None: on above SPARSE_ABOVE_ITEMS items, where a dense step would
    # rewrite every row of every table (MovieLens-100K trains dense, as measured).
    sparse_tables: bool | None = None
    val_fraction: float = 0.1
    refit: bool = True  # retrain on all data for the best epoch count after early stopping
    # Shrinkages of the history offset tried on the validation split (the model's
    # `history_offset_shrink`): of the settings within one standard error of the best (no
    # offset at all is one of them), the one with the smallest offsets is kept
    # (`_within_one_standard_error`). () for none.
    history_offset_shrinks: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0)
    # Ridge penalties on the offset's attribute weights, tried with each shrinkage where the
    # items have attributes (`train_rating_model`'s genres). () for none. On u1's validation
    # split, one-hot genres: 0.8926 at 10, 0.8902 at 30, 0.8916 at 100 against 0.8953
    # without (the quality recipe; bench/findings.md).
    attribute_ridges: tuple[float, ...] = (10.0, 30.0, 100.0)
    # Shrinkages of the item offsets (the model's `item_offsets`) tried on the validation
    # split after the history offset is chosen; () for none. The fast recipe on u1,
    # validation / test: 0.8934 / 0.9135 without, 0.8907 / 0.9111 at 3, 0.8906 / 0.9111 at
    # 10, 0.8909 / 0.9114 at 30, 0.8916 / 0.9120 at 100 (bench/findings.md).
    item_offset_shrinks: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0)
    # The history offset's attributes also tag each item with its popularity, the quantile
    # of its training ratings among this many (0: genres alone). The fast recipe,
    # validation / test: u1 0.8907 / 0.9111 without, 0.8892 / 0.9092 with quartiles; u2
    # 0.9133 / 0.9020 against 0.9123 / 0.9000 (bench/findings.md).
    popularity_buckets: int = 4
    # k of the departure's shrinkage n / (n + k) (the model's `departure_shrink`), tried on
    # the validation split after the item offsets; () for none. The fast recipe, seed 0,
    # validation / test: u1 0.8878 / 0.9074 without, 0.8865 / 0.9057 at 5 (chosen); the
    # quality recipe: new users 0.9609 -> 0.9544, u1 0.9030 -> 0.9014 (bench/findings.md).
    departure_shrinks: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)
    # tau (seconds) and lambda of the session offset (the model's `session_seconds` and
    # `session_shrink`), every pair tried on the validation split, each target predicted for
    # when it was rated, after the departure's shrinkage; () for none. The fast recipe on u1
    # (a dump of its predictions), validation / test: 0.8865 / 0.9051 without, 0.8728 /
    # 0.8971 at 60 s and 4, 0.8754 / 0.8974 at 180 s and 4 (bench/findings.md).
    session_seconds: tuple[float, ...] = (30.0, 60.0, 180.0, 600.0, 1800.0)
    session_shrinks: tuple[float, ...] = (2.0, 4.0, 8.0)
    seed: int = 0
    device: str = "auto"

    def sparse(self, n_items: int) -> bool:
        return self.sparse_tables if self.sparse_tables is not None else (
            n_items > SPARSE_ABOVE_ITEMS)

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
    # Validation RMSE by history offset shrinkage ("none": without the offset).
    offset_rmse: dict[str, float] = field(default_factory=dict)
    # Then, with the chosen history offset, by item offset shrinkage ("none": without).
    item_offset_rmse: dict[str, float] = field(default_factory=dict)
    # Then, with the chosen item offsets, by departure shrinkage ("none": without).
    departure_rmse: dict[str, float] = field(default_factory=dict)
    # Then, with the chosen departure shrinkage, by session offset ("none": without;
    # "180.0+4.0": tau and lambda).
    session_rmse: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"


def train_rating_model(
    data: EncodedRatings,
    scale: RatingScale = RatingScale(),
    config: RatingTrainConfig = RatingTrainConfig(),
    progress: bool = True,
    genres: Sequence[Sequence[str]] | None = None,
) -> RatingTrainResult:
    """Fits a rating model on `data`; early-stops on a per-user validation split of it.
    genres: each item's, in `data.item_ids` order, for the history offset's attribute
    weights (the model keeps them as `item_attributes`, with the items' popularity)."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    fit_part, val_part = per_user_holdout(data, config.val_fraction, seed=config.seed)
    tags = _item_tags(data, genres, config.popularity_buckets)
    vocabulary = genre_vocabulary(tags) if config.attribute_ridges else ()
    config = replace(config, model=replace(config.model, attributes=vocabulary))
    attributes = torch.from_numpy(one_hot(tags, vocabulary)).float()

    model, epochs, predicted = _fit(fit_part, val_part, scale, config, device,
                                    config.max_epochs, progress)
    if vocabulary:
        model.item_attributes.copy_(attributes)
    best = min(epochs, key=lambda e: e["val_rmse"])
    trials = _offset_trials(model, predicted, config, device)
    offset_rmse = _rmses(trials)
    shrink, ridge = _offset_setting(_within_one_standard_error(trials))
    model.config = replace(model.config, history_offset_shrink=shrink, attribute_ridge=ridge)
    sums, counts = _item_residuals(model, fit_part.timelines, device)
    item_rmse = _item_offset_rmse(model, fit_part.timelines, val_part, sums, counts, config,
                                  device)
    item_shrink = _shrink_setting(min(item_rmse, key=item_rmse.get))
    if item_shrink is not None:
        model.item_offsets.copy_(torch.from_numpy(sums / (counts + item_shrink)).float())
    departure_rmse = _departure_rmse(model, fit_part.timelines, val_part,
                                     min(item_rmse.values()), config, device)
    departure = _shrink_setting(min(departure_rmse, key=departure_rmse.get))
    model.config = replace(model.config, departure_shrink=departure)
    session_rmse = _session_rmse(model, fit_part.timelines, val_part,
                                 min(departure_rmse.values()), config, device)
    session = _offset_setting(min(session_rmse, key=session_rmse.get))
    if config.refit:
        # Same recipe, every rating used, for the epoch count validation chose.
        model, _, _ = _fit(data, None, scale, config, device, best["epoch"], progress)
        if vocabulary:
            model.item_attributes.copy_(attributes)
        model.config = replace(model.config, history_offset_shrink=shrink,
                               attribute_ridge=ridge)
        sums, counts = _item_residuals(model, data.timelines, device)
    if item_shrink is not None:
        model.item_offsets.copy_(torch.from_numpy(sums / (counts + item_shrink)).float())
    model.config = replace(model.config, departure_shrink=departure,
                           session_seconds=session[0], session_shrink=session[1])
    model.eval()
    return RatingTrainResult(
        model=model,
        validation_rmse=min(session_rmse.values()),
        best_epoch=best["epoch"],
        epochs=epochs,
        offset_rmse=offset_rmse,
        item_offset_rmse=item_rmse,
        departure_rmse=departure_rmse,
        session_rmse=session_rmse,
        seconds=time.perf_counter() - started,
        device=str(device),
    )


def _item_tags(
    data: EncodedRatings, genres: Sequence[Sequence[str]] | None, popularity_buckets: int
) -> list[list[str]]:
    """Each item's attribute tags: its genres and, with buckets, its popularity in `data`."""
    n = len(data.item_ids)
    tags = [list(g) for g in genres] if genres is not None else [[] for _ in range(n)]
    if popularity_buckets:
        counts = np.bincount(data.items, minlength=n)
        for item, tag in zip(tags, popularity_tags(counts, popularity_buckets), strict=True):
            item.append(tag)
    return tags


def _fit(
    fit_part: EncodedRatings,
    val_part: EncodedRatings | None,
    scale: RatingScale,
    config: RatingTrainConfig,
    device: torch.device,
    max_epochs: int,
    progress: bool,
) -> tuple[RatingModel, list[dict], list[Predicted]]:
    """The model of the best epoch on `val_part` (or of the last, without one), every
    epoch's record, and the best epoch's validation predictions."""
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    users, items, ratings = fit_part.users, fit_part.items, fit_part.ratings
    timelines = fit_part.timelines

    model = RatingModel(config.model, len(fit_part.item_ids), scale).to(device)
    model.global_mean.fill_(float(ratings.mean()))
    optimiser = _optimiser(model, config)

    t_items = torch.from_numpy(items)
    t_ratings = torch.from_numpy(ratings)
    # Every batch is padded to the longest timeline: the random draws then do not depend
    # on which users share a batch (and memory stays batch x longest, not users x longest,
    # except where every user's padded timeline is small enough to keep for the run).
    width = timelines.longest
    padded = _PaddedTimelines(timelines, width)

    epochs: list[dict] = []
    best_state, best_rmse, best_predicted, stale = None, float("inf"), [], 0
    bar = tqdm(range(1, max_epochs + 1), disable=not progress, desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(users), generator=rng)
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            batch_users = users[rows.numpy()]
            batch = _sample_context(
                *padded.rows(batch_users),
                torch.from_numpy(timelines.lengths[batch_users]),
                t_items[rows],
                config.train_context,
                rng,
                config.shortest_context,
            )
            truth = t_ratings[rows].to(device)
            logits, rating = _forward_by_context(model, *(x.to(device) for x in batch))
            loss = _loss(logits, rating, truth, model)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        record = {"epoch": epoch, "train_loss": total / seen}
        if val_part is not None:
            model.eval()
            predicted = _validation_predictions(model, timelines, val_part, device)
            record["val_rmse"] = _rmse(predicted)
            bar.set_postfix(val_rmse=f"{record['val_rmse']:.4f}")
            if record["val_rmse"] < best_rmse - 1e-5:
                best_rmse, best_predicted, stale = record["val_rmse"], predicted, 0
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
    return model, epochs, best_predicted


# Up to this many (user, slot) pairs, every padded timeline is built once per training run
# (MovieLens-100K: 943 users x 737 slots, 8 MB) instead of once per batch: a rating step
# spent a tenth of its time padding.
PADDED_TIMELINES_MAX = 20_000_000


class _PaddedTimelines:
    """Batches of users' timelines padded to `width`, (B, width) items and ratings."""

    def __init__(self, timelines: UserTimelines, width: int):
        self.timelines, self.width = timelines, width
        self.every = None
        if len(timelines.lengths) * width <= PADDED_TIMELINES_MAX:
            everyone = np.arange(len(timelines.lengths))
            self.every = tuple(map(torch.from_numpy, timelines.padded(everyone, width)))

    def rows(self, users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.every is not None:
            index = torch.from_numpy(users)
            return self.every[0][index], self.every[1][index]
        return tuple(map(torch.from_numpy, self.timelines.padded(users, self.width)))


class _LazyAdam:
    """Adam on the rows a sparse gradient touches, their moments updated lazily (as
    torch's SparseAdam, whose sparse-mask arithmetic measured 75 ms a step at 100k items;
    indexing the touched rows costs a few). The touched rows of a table and its moments
    are gathered and updated by torch's fused Adam kernel (the one behind
    `torch.optim.Adam(fused=True)`): one pass instead of a dozen elementwise ops, the same
    arithmetic (39 -> 30 ms a step at 921k items; bench/findings.md)."""

    def __init__(self, tables: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.tables, self.lr, self.betas, self.eps = tables, lr, betas, eps
        self.moments = [(torch.zeros_like(t), torch.zeros_like(t)) for t in tables]
        self.steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for table in self.tables:
            table.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        b1, b2 = self.betas
        for table, (mean, square) in zip(self.tables, self.moments, strict=True):
            if table.grad is None:
                continue
            # Every row's bias correction is the global step's; the fused kernel takes it
            # as a tensor on the table's device.
            step = torch.tensor(float(self.steps), device=table.device)
            grad = table.grad.coalesce()
            rows, values = grad.indices()[0], grad.values()
            # index_select / index_copy_: advanced indexing of a large table measured
            # several times slower (the rows are unique after coalescing).
            touched = [t.index_select(0, rows) for t in (table, mean, square)]
            torch._fused_adam_(
                [touched[0]], [values], [touched[1]], [touched[2]], [], [step],
                lr=self.lr, beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps,
                amsgrad=False, maximize=False)
            for full, part in zip((table, mean, square), touched, strict=True):
                full.index_copy_(0, rows, part)


class _Optimisers:
    """Lazy Adam for the sparse item tables beside Adam for everything else."""

    def __init__(self, *optimisers: torch.optim.Optimizer):
        self.optimisers = optimisers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimiser in self.optimisers:
            optimiser.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimiser in self.optimisers:
            optimiser.step()


def _optimiser(
    model: RatingModel, config: RatingTrainConfig
) -> torch.optim.Optimizer | _Optimisers:
    if not config.sparse(model.n_items):
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # Lazy Adam has no weight decay: a step would have to shrink every row of every table,
    # which is what the sparse step avoids. The sparse tables train without it.
    tables = [t for t in (model.structure, model.taste, model.implicit, model.item_bias)
              if t is not None]
    for table in tables:
        table.sparse = True
    sparse = {id(t.weight) for t in tables}
    rest = [p for p in model.parameters() if id(p) not in sparse]
    return _Optimisers(_LazyAdam([t.weight for t in tables], lr=config.lr),
                       torch.optim.Adam(rest, lr=config.lr, weight_decay=config.weight_decay))


def _sample_context(
    rows_items: torch.Tensor,
    rows_ratings: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    n_context: int,
    rng: torch.Generator,
    min_context: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to n_context of each row's items (a user's padded timeline, (B, W), `lengths`
    (B,) of them real), uniformly without replacement, target excluded;
    with min_context < n_context, each row keeps only a uniform draw of min_context..n_context
    of them.

    Random keys over the padded timeline; invalid slots (padding, the target) get key 2 and
    sort last, so the n smallest keys are a uniform sample of the valid items, and so is
    any prefix of them.
    """
    width = rows_items.shape[1]
    valid = (torch.arange(width)[None, :] < lengths[:, None]) & (
        rows_items != targets[:, None]
    )
    keys = torch.rand(rows_items.shape, generator=rng).masked_fill(~valid, 2.0)
    k = min(n_context, width)
    chosen_keys, chosen = torch.topk(keys, k, dim=1, largest=False)
    items = rows_items.gather(1, chosen)
    ratings = rows_ratings.gather(1, chosen)
    mask = chosen_keys < 1.5
    if min_context is not None and min_context < n_context:
        keep = torch.randint(min_context, n_context + 1, (len(targets), 1), generator=rng)
        mask = mask & (torch.arange(k)[None, :] < keep)
    return items, ratings, mask, targets


def _forward_by_context(
    model: RatingModel,
    hist_items: torch.Tensor,
    hist_ratings: torch.Tensor,
    hist_mask: torch.Tensor,
    targets: torch.Tensor,
    groups: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits and ratings for a batch of one-target examples, in the batch's
    order, computed in `groups` of similar context size, each group cut to its own
    longest context. A sampled context keeps 1..train_context items at the front of its
    row, so about half of a padded batch is padding; cut, a rating step measured a third
    faster (46 -> 30 ms), the same predictions (bench/findings.md)."""
    slots = torch.arange(1, hist_mask.shape[1] + 1, device=hist_mask.device)
    used = (hist_mask * slots).amax(1)  # each row's last kept slot, counted from 1
    order = torch.argsort(used)
    logits, rating = [], []
    for part in order.chunk(groups):
        width = max(int(used[part].max()), 1)
        out = model(hist_items[part, :width], hist_ratings[part, :width],
                    hist_mask[part, :width], targets[part, None])
        logits.append(out.logits)
        rating.append(out.rating)
    inverse = torch.argsort(order)
    return torch.cat(logits)[inverse], torch.cat(rating)[inverse]


def _loss(
    logits: torch.Tensor, rating: torch.Tensor, truth: torch.Tensor, model: RatingModel
) -> torch.Tensor:
    """MLP2: cross-entropy over rating classes; dot and MLP1: squared error."""
    if model.config.head == "mlp2":
        classes = torch.round((truth - model.scale.low) / model.scale.step).long()
        return F.cross_entropy(logits[:, 0, :], classes)
    return F.mse_loss(rating[:, 0], truth)


# One validation user's history as the model read it, their predictions and the truth.
Predicted = tuple[History, np.ndarray, np.ndarray, np.ndarray]  # + the target items


def _rmse(predicted: list[Predicted]) -> float:
    """RMSE over validation users, each user's context being their whole training
    timeline (capped)."""
    return float(np.sqrt(np.mean(np.concatenate([p - truth for _, p, truth, _ in predicted])
                                 ** 2)))


def _rmses(trials: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Each `_offset_trials` setting's validation RMSE, by its key."""
    return {name: float(np.sqrt(np.mean(error**2))) for name, (error, _) in trials.items()}


def _offset_trials(
    model: RatingModel, found: list[Predicted], config: RatingTrainConfig, device: torch.device,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each setting's validation errors and the offsets it added, one per prediction:
    without the history offset ("none"), with each shrinkage in
    `config.history_offset_shrinks` ("3.0") and, where the model has item attributes,
    with each attribute ridge beside it ("3.0+30.0"), from the model's predictions
    without it (`found`). The residuals do not depend on the setting, so each history's
    are computed once, and each setting's fit is a small ridge solve per history."""
    predicted = np.concatenate([p for _, p, _, _ in found])
    truth = np.concatenate([t for _, _, t, _ in found])
    trials = {"none": (predicted - truth, np.zeros_like(predicted))}
    if not config.history_offset_shrinks:
        return trials
    histories = [h for h, _, _, _ in found]
    residuals: list[np.ndarray] = [np.zeros(0)] * len(found)
    for chunk in chunks_by_length(histories, VALIDATION_CHUNK):
        found_residuals = _residuals(model, [histories[i] for i in chunk], device)
        for i, r in zip(chunk, found_residuals, strict=True):
            residuals[i] = r
    attributes = model.item_attributes.double().cpu().numpy()
    features = [np.hstack([np.ones((len(h), 1)), attributes[h.items]]) for h in histories]
    gram = np.stack([x.T @ x for x in features])  # (U, W, W)
    moment = np.stack([x.T @ r for x, r in zip(features, residuals, strict=True)])  # (U, W)
    ridges = config.attribute_ridges if attributes.shape[1] else ()
    low, high = model.scale.low, model.scale.high
    for shrink in config.history_offset_shrinks:
        for ridge in (None, *ridges):
            width = 1 if ridge is None else gram.shape[1]
            penalty = np.diag([shrink] + [ridge or 0.0] * (width - 1))
            weights = np.linalg.solve(gram[:, :width, :width] + penalty,
                                      moment[:, :width, None])[..., 0]  # (U, W)
            offsets = np.concatenate([
                weights[u, 0] + attributes[items, : width - 1] @ weights[u, 1:]
                for u, (_, _, _, items) in enumerate(found)
            ])
            trials[_offset_key(shrink, ridge)] = (
                np.clip(predicted + offsets, low, high) - truth, offsets)
    return trials


def _within_one_standard_error(trials: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """The setting with the smallest offsets among those whose validation error validation
    cannot tell from the best's: a squared error at most one standard error (of the paired
    differences) above it. Breiman's one-standard-error rule (Breiman, Friedman, Olshen &
    Stone, 1984), with the offsets' size as the measure of simplicity. A smaller offset
    moves every prediction less with any one history item, so the item the attention
    singles out stays the one that moves the prediction (issue 18's lever: on the
    recommendation benchmark's model, 89.5% of its pairs at the lowest error, 91.0% here;
    bench/findings.md)."""
    squared = {name: error**2 for name, (error, _) in trials.items()}
    best = min(squared, key=lambda name: squared[name].mean())

    def indistinguishable(name: str) -> bool:
        excess = squared[name] - squared[best]
        return excess.mean() <= excess.std() / np.sqrt(max(len(excess), 1))

    near = [name for name in trials if indistinguishable(name)]
    return min(near, key=lambda name: float(np.mean(trials[name][1] ** 2)))


def _offset_key(shrink: float, ridge: float | None) -> str:
    return str(shrink) if ridge is None else f"{shrink}+{ridge}"


def _offset_setting(key: str) -> tuple[float | None, float | None]:
    """The two numbers a grid key names ("3.0+30.0"; "3.0": the second None; "none": both):
    the history offset's shrinkage and attribute ridge (`_offset_trials`), or the session
    offset's tau and lambda (`_session_rmse`)."""
    if key == "none":
        return None, None
    shrink, _, ridge = key.partition("+")
    return float(shrink), float(ridge) if ridge else None


@torch.inference_mode()
def _item_residuals(
    model: RatingModel, timelines: UserTimelines, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the sum and the count of its raters' residuals as serving predicts them:
    each history item predicted from the others, shifted by the history offset."""
    sums, counts = np.zeros(model.n_items), np.zeros(model.n_items)
    cap = model.config.max_context
    histories = [timelines.history(u).newest(cap) for u in range(len(timelines.lengths))]
    for chunk in chunks_by_length(histories, VALIDATION_CHUNK):
        part = [histories[i] for i in chunk]
        batch = pad_batch(part, [np.zeros(0, np.int64)] * len(part), device)
        items, mask = batch.hist_items, batch.hist_mask
        residuals = model.history_residuals(items, batch.hist_ratings, mask)
        if model.config.history_offset_shrink is not None:
            weights = model.offset_weights(items, residuals, mask)
            residuals = residuals - model.offset_of(weights, items)
        rated, kept = items.cpu().numpy(), mask.cpu().numpy()
        np.add.at(sums, rated[kept], residuals.double().cpu().numpy()[kept])
        np.add.at(counts, rated[kept], 1.0)
    return sums, counts


def _item_offset_rmse(
    model: RatingModel, timelines: UserTimelines, part: EncodedRatings, sums: np.ndarray,
    counts: np.ndarray, config: RatingTrainConfig, device: torch.device,
) -> dict[str, float]:
    """Validation RMSE without item offsets ("none") and with each shrinkage in
    `config.item_offset_shrinks` ("10.0"), c_i = sums_i / (counts_i + shrinkage), each
    predicted as serving predicts, with the model's history offset. Leaves the model's
    item offsets at zero."""
    found = {"none": _validation_predictions(model, timelines, part, device)}
    for shrink in config.item_offset_shrinks:
        model.item_offsets.copy_(torch.from_numpy(sums / (counts + shrink)).float())
        found[str(shrink)] = _validation_predictions(model, timelines, part, device)
    model.item_offsets.zero_()
    return {name: _rmse(predicted) for name, predicted in found.items()}


def _shrink_setting(key: str) -> float | None:
    """The shrinkage an item-offset or departure grid key names; "none": None."""
    return None if key == "none" else float(key)


@torch.inference_mode()
def _departure_rmse(
    model: RatingModel, timelines: UserTimelines, part: EncodedRatings, without: float,
    config: RatingTrainConfig, device: torch.device,
) -> dict[str, float]:
    """Validation RMSE without the departure's shrinkage ("none": `without`, already
    measured) and with each k in `config.departure_shrinks` ("3.0"), predicted as serving
    predicts, with the model's offsets. Each history's offset (its L x L pass, the bulk of
    a validation pass) is computed once for every k. Leaves the model without it."""
    histories, items, truth = _validation_users(model, timelines, part)
    squared = {shrink: 0.0 for shrink in config.departure_shrinks}
    for chunk in chunks_by_length(histories, VALIDATION_CHUNK):
        batch = pad_batch([histories[i] for i in chunk], [items[i] for i in chunk], device)
        offset = None
        if model.config.history_offset_shrink is not None:
            offset = model.history_offset(batch.hist_items, batch.hist_ratings, batch.hist_mask)
        for shrink in config.departure_shrinks:
            model.config = replace(model.config, departure_shrink=shrink)
            rated = rating_output(model, batch, offset).rating.double().cpu().numpy()
            squared[shrink] += sum(float(((rated[row, : len(items[i])] - truth[i]) ** 2).sum())
                                   for row, i in enumerate(chunk))
    model.config = replace(model.config, departure_shrink=None)
    count = max(sum(len(t) for t in truth), 1)
    return {"none": without, **{str(k): float(np.sqrt(v / count)) for k, v in squared.items()}}


@torch.inference_mode()
def _session_rmse(
    model: RatingModel, timelines: UserTimelines, part: EncodedRatings, without: float,
    config: RatingTrainConfig, device: torch.device,
) -> dict[str, float]:
    """Validation RMSE without the session offset ("none": `without`, already measured)
    and with each (tau, lambda) of `config.session_seconds` x `config.session_shrinks`
    ("180.0+4.0"), each target predicted as serving predicts, for when it was rated. Each
    history's residuals and offset are computed once for every setting. Leaves the model
    without it. Needs the history offset: without one, only "none"."""
    if model.config.history_offset_shrink is None:
        return {"none": without}
    histories, items, truth = _validation_users(model, timelines, part)
    at = _validation_times(part)
    settings = [(tau, shrink) for tau in config.session_seconds
                for shrink in config.session_shrinks]
    squared = dict.fromkeys(settings, 0.0)
    for chunk in chunks_by_length(histories, VALIDATION_CHUNK):
        batch = pad_batch([histories[i] for i in chunk], [items[i] for i in chunk], device,
                          [at[i] for i in chunk])
        hist_items, mask = batch.hist_items, batch.hist_mask
        residuals = model.history_residuals(hist_items, batch.hist_ratings, mask)
        weights = model.offset_weights(hist_items, residuals, mask)
        after_offset = residuals - model.offset_of(weights, hist_items)
        for tau, shrink in settings:
            model.config = replace(model.config, session_seconds=tau, session_shrink=shrink)
            session = model.session_offset(after_offset, mask, batch.hist_times,
                                           batch.target_times)
            rated = rating_output(model, batch, HistoryOffset(weights, session))
            rated = rated.rating.double().cpu().numpy()
            squared[tau, shrink] += sum(
                float(((rated[row, : len(items[i])] - truth[i]) ** 2).sum())
                for row, i in enumerate(chunk))
    model.config = replace(model.config, session_seconds=None, session_shrink=None)
    count = max(sum(len(t) for t in truth), 1)
    return {"none": without, **{f"{tau}+{shrink}": float(np.sqrt(v / count))
                                for (tau, shrink), v in squared.items()}}


def _validation_times(part: EncodedRatings) -> list[np.ndarray]:
    """Per validation user, in `_validation_users`' order: when each of their validation
    items was rated."""
    order = np.argsort(part.users, kind="stable")
    users, times = part.users[order], part.timestamps[order]
    return np.split(times.astype(np.int64), np.flatnonzero(np.diff(users)) + 1)


@torch.inference_mode()
def _residuals(model: RatingModel, histories: list[History], device: torch.device
               ) -> list[np.ndarray]:
    """Each history's r_j - r^_j, every item predicted from the others."""
    batch = pad_batch(histories, [np.zeros(0, np.int64)] * len(histories), device)
    found = model.history_residuals(batch.hist_items, batch.hist_ratings, batch.hist_mask)
    found = found.double().cpu().numpy()
    return [found[row, : len(h)] for row, h in enumerate(histories)]


def _validation_predictions(
    model: RatingModel, timelines: UserTimelines, part: EncodedRatings, device: torch.device
) -> list[Predicted]:
    """Per validation user, in user order: the history the model read (capped), the
    predictions of their validation items (float64), the truth and the items."""
    histories, items, truth = _validation_users(model, timelines, part)
    found: dict[int, Predicted] = {}
    for chunk in chunks_by_length(histories, VALIDATION_CHUNK):
        preds = predict_ratings(model, [histories[i] for i in chunk],
                                [items[i] for i in chunk], device)
        for i, p in zip(chunk, preds, strict=True):
            found[i] = (histories[i], p.astype(np.float64), truth[i], items[i])
    return [found[i] for i in range(len(histories))]


def _validation_users(
    model: RatingModel, timelines: UserTimelines, part: EncodedRatings
) -> tuple[list[History], list[np.ndarray], list[np.ndarray]]:
    """Per validation user, in user order: the history the model reads (capped), the
    validation items and their ratings (float64)."""
    order = np.argsort(part.users, kind="stable")
    users, items, truth = part.users[order], part.items[order], part.ratings[order]
    groups = np.split(np.arange(len(users)), np.flatnonzero(np.diff(users)) + 1)
    cap = model.config.max_context
    histories = [timelines.history(int(users[g[0]])).newest(cap) for g in groups]
    return (histories, [items[g] for g in groups],
            [truth[g].astype(np.float64) for g in groups])


# Validation scores users in chunks of this many, of similar history length: a chunk is
# padded to its longest history (and a user's validation items grow with it). MovieLens-
# 100K, a validation pass: 4.3 s in user order by 256, 0.34-0.57 s by length in 32s, the
# same predictions to float rounding (7e-7); the history offset's pass 2.6 -> 0.45 s.
VALIDATION_CHUNK = 32
