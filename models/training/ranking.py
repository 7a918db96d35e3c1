"""Trains the ranking model (Lake et al., 2019) on frozen item embeddings: predict the
future.

Each example cuts one user's timeline at a random point: the items before the cut
(newest `max_history`) are the history, the next `horizon` items are the positives. Two
objectives:
- "softmax" (default): a softmax over the whole catalogue with the positives as a
  multi-label target (the history's own items masked out). For catalogues of thousands of
  items this is cheap, and it measured far better on ML-100K (README, *Ranking*); above
  `FULL_CATALOGUE_MAX_ITEMS` it is refused.
- "sampled": the paper's logistic loss, positives against `negatives` items drawn from the
  training popularity raised to `negative_power`, positives and negatives weighted equally.
  Its cost does not grow with the catalogue.
Early stopping watches NDCG@10 on held-out validation users' last `horizon` items, the same
protocol as the test, never the test split itself (above `FULL_CATALOGUE_MAX_ITEMS`, among
popular sampled items).
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
from models.data.table import DataError, RatingScale
from models.evaluation.ranking import RankingTask, evaluate_ranking, metrics_at_k
from models.history import History, chunks_by_length, pad_batch
from models.inference.device import resolve_device
from models.inference.scoring import catalogue_scores, ranking_scores
from models.networks.item_item import item_counts, weighted_means
from models.networks.ranking import RankingModel, RankingModelConfig
from models.training.item_item import (
    ITEM_ITEM_MAX_ITEMS,
    ITEM_ITEM_UNLIKED,
    ITEM_ITEM_WEIGHTS,
    ease_weights,
)

log = logging.getLogger(__name__)

MIN_VALIDATION_HISTORY = 4  # a validation user keeps at least 2 items to train on
# Up to this many items, validation ranks the whole catalogue (exact) and the softmax
# objective is allowed. Beyond it a validation user ranks their held-out items among
# VALIDATION_SAMPLE items drawn by popularity, the same draw every epoch (sampled metrics
# are biased (Krichene & Rendle, 2020), but they only pick an epoch here), and the
# catalogue-wide softmax is refused: its logits alone would be batch x items.
FULL_CATALOGUE_MAX_ITEMS = 20_000
VALIDATION_SAMPLE = 1_000
# Whole-catalogue validation scores users in batches of at most this many (item, history
# item) attention weights per hop: 128 users at MovieLens's 1,682 items, 16 at 20,000.
VALIDATION_BATCH_FLOATS = 64_000_000


@dataclass(frozen=True)
class RankingTrainConfig:
    """Everything that decides a training run, the architecture nested as `model`; saved
    in the artifact manifest."""

    model: RankingModelConfig = RankingModelConfig()
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 20  # bounds training time; best epochs measured 4-16 on ML-100K
    patience: int = 4
    cuts_per_user: int = 4  # training examples per user per epoch
    horizon: int = 10  # positives after each cut, and the validation window
    val_users: float = 0.2
    val_max_users: int = 2_000  # validation cost stays bounded on large data
    grad_clip: float = 10.0  # as in the paper
    objective: str = "softmax"  # or "sampled" (the paper's)
    negatives: int = 100  # per example, for "sampled" (the paper's |N_u|)
    negative_power: float = 0.75  # popularity smoothing of the negatives (the paper's gamma)
    # Weight of a next item the user rated below `scale.liked`: 1 learns what they will
    # watch, less learns what they will watch and like (and validates on liked items only).
    unliked_weight: float = 1.0
    # EASE's regulariser for the item-to-item term fitted after training (its beta chosen
    # on validation); None: no term. Fitted up to ITEM_ITEM_MAX_ITEMS items.
    item_item_reg: float | None = 400.0
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RankingTrainResult:
    model: RankingModel
    best_epoch: int
    validation_ndcg: float  # the best epoch's, with the item-to-item term when it has one
    epochs: list[dict]
    seconds: float
    device: str
    # Validation NDCG@10 by the item-to-item term's (beta, gamma) ((0, 1): without), and
    # liked NDCG@10 (the held-out items rated at least `scale.liked`), which chose them
    # where the ranker reads ratings; empty: not fitted (the liked one: no ratings).
    item_item_ndcg: dict[tuple[float, float], float] = field(default_factory=dict)
    item_item_liked_ndcg: dict[tuple[float, float], float] = field(default_factory=dict)

    def item_item_table(self) -> dict[str, dict[str, float]]:
        """Both grids with readable keys, for a JSON record."""
        table = {}
        for setting, ndcg in self.item_item_ndcg.items():
            row = {"ndcg": ndcg}
            if self.item_item_liked_ndcg:
                row["liked_ndcg"] = self.item_item_liked_ndcg[setting]
            table["beta={:g},unliked={:g}".format(*setting)] = row
        return table


def train_ranking_model(
    data: EncodedRatings,
    item_embeddings: torch.Tensor,
    scale: RatingScale = RatingScale(),
    config: RankingTrainConfig = RankingTrainConfig(),
    progress: bool = True,
) -> RankingTrainResult:
    """Fits a ranking model over `item_embeddings` (frozen; rows in data.item_ids order)."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    timelines = data.timelines
    lengths = timelines.lengths.copy()
    liked = scale.liked if config.unliked_weight < 1 else None
    n_items = len(data.item_ids)
    validation = _validation_task(timelines, lengths, n_items, config, rng, scale.liked, liked)
    trainable = np.flatnonzero(lengths >= 2)

    model = RankingModel(config.model, item_embeddings, scale).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.objective == "softmax":
        if n_items > FULL_CATALOGUE_MAX_ITEMS:
            raise DataError(
                f"{n_items} items: the whole-catalogue softmax is for catalogues up to "
                f"{FULL_CATALOGUE_MAX_ITEMS}; train the ranker with sampled negatives "
                "(--ranker-objective sampled)"
            )
        objective = _CatalogueSoftmax(n_items, device)
    elif config.objective == "sampled":
        objective = _SampledLogistic(timelines, lengths, n_items, config, device)
    else:
        raise ValueError(f"unknown ranker objective {config.objective!r}")

    epochs: list[dict] = []
    best_state, best_ndcg, stale = None, -1.0, 0
    bar = tqdm(range(1, config.max_epochs + 1), disable=not progress, desc="rank", unit="epoch")
    for epoch in bar:
        model.train()
        total, seen_examples = 0.0, 0
        for users, cuts in _length_bucketed_batches(trainable, lengths, config, rng):
            batch = _examples(timelines, lengths, users, cuts, config, scale.liked, device)
            loss = objective.loss(model, *batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            total += float(loss.detach()) * len(users)
            seen_examples += len(users)
        model.eval()
        ndcg = _validation_ndcg(model, timelines, validation, device)
        record = {"epoch": epoch, "train_loss": total / seen_examples, "val_ndcg": ndcg}
        epochs.append(record)
        bar.set_postfix(val_ndcg=f"{ndcg:.4f}")
        log.debug("epoch %s", record)
        if ndcg > best_ndcg + 1e-4:
            best_ndcg, stale, best_state = ndcg, 0, copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    best = max(epochs, key=lambda e: e["val_ndcg"])
    grid = _ItemItemGrid({}, {})
    # The term is validated on the whole catalogue, which ITEM_ITEM_MAX_ITEMS is below.
    whole_catalogue = validation.candidates is None
    if config.item_item_reg is not None and n_items <= ITEM_ITEM_MAX_ITEMS and whole_catalogue:
        grid = _fit_item_item(model, timelines, lengths, validation, config.item_item_reg,
                              device)
    chosen = (model.config.item_item_weight or 0.0, model.config.item_item_unliked)
    return RankingTrainResult(
        model=model,
        best_epoch=best["epoch"],
        validation_ndcg=grid.ndcg.get(chosen, best["val_ndcg"]),
        epochs=epochs,
        seconds=time.perf_counter() - started,
        device=str(device),
        item_item_ndcg=grid.ndcg,
        item_item_liked_ndcg=grid.liked_ndcg,
    )


@dataclass(frozen=True)
class _ItemItemGrid:
    """Validation NDCG@10 and liked NDCG@10 by the term's (beta, gamma)."""

    ndcg: dict[tuple[float, float], float]
    liked_ndcg: dict[tuple[float, float], float]  # empty where the ranker reads no ratings

    @property
    def chosen(self) -> tuple[float, float]:
        """The best setting by liked NDCG@10 where there are ratings, else by NDCG@10."""
        criterion = self.liked_ndcg or self.ndcg
        return max(criterion, key=criterion.get)


def _fit_item_item(
    model: RankingModel, timelines: UserTimelines, lengths: np.ndarray,
    validation: _Validation, reg: float, device: torch.device,
) -> _ItemItemGrid:
    """Chooses the item-to-item term's beta and gamma together on validation, B fitted on
    what the ranker trained on (the validation windows held out), then installs B refitted
    on every interaction, as the ranker will serve them; no term when none beats none.

    Where the ranker reads ratings the criterion is liked NDCG@10, the measure of the
    service's default order (`recommended`: what the user will pick and like), and gamma
    is searched; on interactions, NDCG@10."""
    users = np.repeat(np.arange(len(timelines.lengths)), timelines.lengths)
    trained = timelines.first(lengths)
    weights = ease_weights(users[trained], timelines.items[trained], model.n_items, reg)
    rated = model.config.ratings and len(validation.liked) > 0
    grid = _item_item_grid(model, timelines, validation, weights.to(device), rated, device)
    beta, gamma = grid.chosen
    if beta == 0.0:
        model.without_item_item()
    else:
        every = ease_weights(users, timelines.items, model.n_items, reg)
        model.with_item_item(every.to(device), beta, gamma)
    log.info("item-to-item term by (beta, gamma): validation NDCG@10 %s, liked NDCG@10 %s",
             grid.ndcg, grid.liked_ndcg)
    return grid


def _item_item_grid(
    model: RankingModel, timelines: UserTimelines, validation: _Validation,
    weights: torch.Tensor, liked: bool, device: torch.device,
) -> _ItemItemGrid:
    """Validation NDCG@10 (and, with `liked`, liked NDCG@10 and every gamma; else gamma
    1) of the attention's logits plus beta times each gamma's weighted mean of B, for
    every (beta, gamma), and without the term ((0, 1)). The attention and each gamma's
    means are computed once; the grid only re-ranks their sums. Whole-catalogue
    validation only."""
    histories = _validation_histories(model, timelines, validation)
    attention = _validation_scores(model, histories, device)
    padded = pad_batch(histories, [np.zeros(0, np.int64)] * len(histories), device)
    grid = _ItemItemGrid({}, {})

    def measure(setting: tuple[float, float], means: np.ndarray | None) -> None:
        def scores(rows: np.ndarray) -> np.ndarray:
            return attention[rows] if means is None else attention[rows] + setting[0] * means[rows]
        grid.ndcg[setting] = evaluate_ranking(validation.task, scores)["ndcg"]
        if liked:
            grid.liked_ndcg[setting] = evaluate_ranking(
                validation.liked_task, lambda rows: scores(validation.liked[rows]))["ndcg"]

    measure((0.0, 1.0), None)
    for gamma in ITEM_ITEM_UNLIKED if liked else (1.0,):
        counts = item_counts(padded.hist_ratings, model.scale.liked, gamma) * padded.hist_mask
        with torch.inference_mode():
            means = weighted_means(weights, padded.hist_items, counts.to(weights.dtype))
        means = means.float().cpu().numpy()
        for beta in ITEM_ITEM_WEIGHTS:
            measure((beta, gamma), means)
    return grid


class _CatalogueSoftmax:
    """Every item scored; the positives are a multi-label target of one softmax, each
    weighted (an unliked pick may weigh less)."""

    def __init__(self, n_items: int, device: torch.device):
        self.all_items = torch.arange(n_items, device=device)

    def loss(
        self, model: RankingModel, hist_items: torch.Tensor, hist_ratings: torch.Tensor,
        hist_mask: torch.Tensor, positives: torch.Tensor, positive_mask: torch.Tensor,
    ) -> torch.Tensor:
        # The history's own items cannot be picked next, unless they are positives too.
        shape = (hist_items.shape[0], len(self.all_items))
        seen = hist_mask.new_zeros(shape, dtype=torch.float32).scatter_add_(
            1, hist_items, hist_mask.float()) > 0
        repeated = bool(seen.gather(1, positives).any())
        seen.scatter_(1, positives, torch.zeros_like(positives, dtype=torch.bool))
        # The fused scores (no attention maps kept): equal to forward's, a fifth cheaper.
        # The softmax leaves out the history's own items, so their scores (a target may
        # not attend to itself) are skipped unless a positive is among them.
        scores = model.score(hist_items, hist_ratings, hist_mask, self.all_items,
                             own_items_scored=repeated)  # (B, N)
        log_p = torch.log_softmax(scores.masked_fill(seen, float("-inf")), dim=-1)
        picked = log_p.gather(1, positives) * positive_mask
        return -(picked.sum(1) / positive_mask.sum(1).clamp(min=1e-6)).mean()


class _SampledLogistic:
    """The paper's loss: log sigma(score) over the positives plus log(1 - sigma(score)) over
    negatives drawn from popularity^power, each side averaged, so both weigh half whatever
    their counts. A negative that is one of the example's positives is dropped."""

    def __init__(
        self, timelines: UserTimelines, lengths: np.ndarray, n_items: int,
        config: RankingTrainConfig, device: torch.device,
    ):
        counts = np.bincount(timelines.items[timelines.first(lengths)], minlength=n_items)
        self.noise = torch.from_numpy(counts.astype(np.float64) ** config.negative_power).to(
            device
        )
        self.negatives = config.negatives

    def loss(
        self, model: RankingModel, hist_items: torch.Tensor, hist_ratings: torch.Tensor,
        hist_mask: torch.Tensor, positives: torch.Tensor, positive_mask: torch.Tensor,
    ) -> torch.Tensor:
        drawn = torch.multinomial(self.noise, positives.shape[0] * self.negatives, True)
        negatives = drawn.view(positives.shape[0], self.negatives)
        targets = torch.cat([positives, negatives], dim=1)
        scores = model(hist_items, hist_ratings, hist_mask, targets).score
        n_pos = positives.shape[1]
        negative_mask = (
            (negatives[:, :, None] != positives[:, None, :]) | (positive_mask[:, None, :] == 0)
        ).all(-1).float()
        pos_term = F.logsigmoid(scores[:, :n_pos]) * positive_mask
        neg_term = F.logsigmoid(-scores[:, n_pos:]) * negative_mask
        per_example = pos_term.sum(1) / positive_mask.sum(1).clamp(min=1e-6) + neg_term.sum(1) / (
            negative_mask.sum(1).clamp(min=1)
        )
        return -(per_example / 2).mean()


@dataclass(frozen=True)
class _Validation:
    """Validation users (timeline rows), their task, and, for a large catalogue, the items
    each ranks (held-out ones among a popularity draw); None: the whole catalogue."""

    users: np.ndarray
    task: RankingTask
    candidates: list[np.ndarray] | None
    # Positions (in `users`) of those who rated a held-out item at least `scale.liked`,
    # and their task with only those items relevant.
    liked: np.ndarray
    liked_task: RankingTask


def _validation_task(
    timelines: UserTimelines, lengths: np.ndarray, n_items: int, config: RankingTrainConfig,
    rng: np.random.Generator, liked_at: float, relevant_at: float | None = None,
) -> _Validation:
    """Picks validation users and shortens their timelines in place (`lengths`): their
    last `horizon` items (at most half their history) are held out from training and
    become the relevant items (with `relevant_at`, those rated at least that); those rated
    at least `liked_at` are the liked task's."""
    eligible = np.flatnonzero(lengths >= MIN_VALIDATION_HISTORY)
    if len(eligible) == 0:
        raise DataError(
            f"the ranker validates on users with at least {MIN_VALIDATION_HISTORY} ratings; "
            "this training data has none"
        )
    wanted = min(config.val_max_users, max(1, int(round(config.val_users * len(eligible)))))
    chosen = np.sort(rng.permutation(eligible)[:wanted])
    relevant, liked_relevant = [], []
    for user in chosen:
        n = lengths[user]
        window = min(config.horizon, n // 2)
        history = timelines.history(user)
        held = slice(n - window, n)
        keep = history.ratings[held] >= (relevant_at if relevant_at is not None else -np.inf)
        relevant.append(set(history.items[held][keep].tolist()))
        liked_relevant.append(set(history.items[held][history.ratings[held] >= liked_at]
                                  .tolist()))
        lengths[user] = n - window
    scored = [p for p, r in enumerate(relevant) if r]  # a user who liked none scores none
    chosen, relevant = chosen[scored], [relevant[p] for p in scored]
    liked_relevant = [liked_relevant[p] for p in scored]
    seen = [timelines.history(u).items[: lengths[u]] for u in chosen]
    liked_users = np.array([p for p, r in enumerate(liked_relevant) if r], np.int64)
    liked_task = RankingTask([str(chosen[p]) for p in liked_users],
                             [seen[p] for p in liked_users],
                             [liked_relevant[p] for p in liked_users])
    candidates = None
    if n_items > FULL_CATALOGUE_MAX_ITEMS:
        counts = np.bincount(timelines.items[timelines.first(lengths)], minlength=n_items)
        drawn = rng.choice(n_items, (len(chosen), VALIDATION_SAMPLE), p=counts / counts.sum())
        candidates = [np.union1d(sorted(r), np.setdiff1d(d, h))
                      for r, h, d in zip(relevant, seen, drawn, strict=True)]
    return _Validation(chosen, RankingTask([str(u) for u in chosen], seen, relevant), candidates,
                       liked_users, liked_task)


def _validation_ndcg(
    model: RankingModel, timelines: UserTimelines, validation: _Validation, device: torch.device
) -> float:
    users, task = validation.users, validation.task
    if validation.candidates is None:
        scores = _validation_scores(model, _validation_histories(model, timelines, validation),
                                    device)
        return evaluate_ranking(task, lambda positions: scores[positions])["ndcg"]
    total = 0.0
    for start in range(0, len(users), 64):
        positions = range(start, min(start + 64, len(users)))
        wanted = [validation.candidates[p] for p in positions]
        capped = [_validation_history(timelines, validation, p).newest(model.config.max_history)
                  for p in positions]
        with torch.inference_mode():
            scores = ranking_scores(model, pad_batch(capped, wanted, device)).float().cpu()
        for row, p in enumerate(positions):
            best = np.argsort(-scores[row, : len(wanted[row])].numpy(), kind="stable")[:10]
            total += metrics_at_k(wanted[row][best], task.relevant[p], 10)["ndcg"]
    return total / len(users)


def _validation_history(timelines: UserTimelines, validation: _Validation, p: int) -> History:
    """The p-th validation user's history: what they rated before the held-out window."""
    seen = validation.task.seen[p]
    return History(seen, timelines.history(validation.users[p]).ratings[: len(seen)])


def _validation_histories(
    model: RankingModel, timelines: UserTimelines, validation: _Validation
) -> list[History]:
    """Every validation user's history, as much of it as the model reads."""
    return [_validation_history(timelines, validation, p).newest(model.config.max_history)
            for p in range(len(validation.users))]


def _validation_scores(
    model: RankingModel, histories: list[History], device: torch.device
) -> np.ndarray:
    """(users, n_items) whole-catalogue logits, users scored in batches of similar history
    length: a batch is padded to its longest (MovieLens-100K, 189 users: 0.76-0.89 s a
    pass in user order, 0.61-0.69 s by length). At most val_max_users x
    FULL_CATALOGUE_MAX_ITEMS floats: 160 MB."""
    scores = np.empty((len(histories), model.n_items), np.float32)
    for rows in chunks_by_length(histories, _validation_batch(model)):
        scores[rows] = catalogue_scores(model, [histories[i] for i in rows], device)
    return scores


def _validation_batch(model: RankingModel) -> int:
    """Users scored at once against the whole catalogue, within `VALIDATION_BATCH_FLOATS`."""
    per_user = model.n_items * model.config.max_history
    return int(np.clip(VALIDATION_BATCH_FLOATS // per_user, 1, 128))


def _length_bucketed_batches(
    trainable: np.ndarray,
    lengths: np.ndarray,
    config: RankingTrainConfig,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of (users, cuts) batches: a random cut per example (1..n-1: at least one
    item before and one after), examples of similar history length batched together so
    padding stays small (cost grows with the longest history in a batch), batch order
    shuffled."""
    users = rng.permutation(np.repeat(trainable, config.cuts_per_user))
    cuts = rng.integers(1, lengths[users])
    history_length = np.minimum(cuts, config.model.max_history)
    chunk = config.batch_size * 16
    batches = []
    for start in range(0, len(users), chunk):
        part = slice(start, start + chunk)
        order = np.argsort(history_length[part], kind="stable")
        u, c = users[part][order], cuts[part][order]
        batches += [
            (u[i : i + config.batch_size], c[i : i + config.batch_size])
            for i in range(0, len(u), config.batch_size)
        ]
    return [batches[i] for i in rng.permutation(len(batches))]


def _examples(
    timelines: UserTimelines,
    lengths: np.ndarray,
    users: np.ndarray,
    cuts: np.ndarray,
    config: RankingTrainConfig,
    liked: float,
    device: torch.device,
) -> tuple[torch.Tensor, ...]:
    """(history items, ratings, mask, positives, positive weights) for cuts of timelines:
    a positive rated under `liked` weighs `config.unliked_weight`, padding 0."""
    n = lengths[users]
    starts = np.maximum(0, cuts - config.model.max_history)
    width = int((cuts - starts).max())
    offsets = np.arange(width)
    hist_pos = starts[:, None] + offsets[None, :]
    hist_mask = hist_pos < cuts[:, None]
    hist_pos = np.where(hist_mask, hist_pos, 0)
    pos_pos = cuts[:, None] + np.arange(config.horizon)[None, :]
    pos_mask = pos_pos < n[:, None]
    pos_pos = np.where(pos_mask, pos_pos, cuts[:, None])
    hist_items, hist_ratings = timelines.at(users, hist_pos)
    positives, positive_ratings = timelines.at(users, pos_pos)
    weights = pos_mask * np.where(positive_ratings < liked, config.unliked_weight, 1.0)
    tensors = (hist_items, hist_ratings, hist_mask, positives, weights.astype(np.float32))
    return tuple(torch.from_numpy(np.ascontiguousarray(t)).to(device) for t in tensors)
