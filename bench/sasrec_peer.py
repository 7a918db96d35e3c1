"""SASRec (Kang & McAuley, 2018) trained with a softmax over the whole catalogue
(Klenitskiy & Vasilev, 2023): issue 16's sequential peer for our ranker.

A causal transformer reads a user's items oldest first; each position's hidden state,
dotted with every item's embedding (tied with the input's), scores the next item. Training
is cross-entropy over the whole catalogue at every position, not the original's one sampled
negative: the change that lifted SASRec above BERT4Rec on ML-1M. Ratings are not read:
what was rated, in order, is the input.

Fitting follows how bench/ranking_quality.py tunes the peers: the epoch count is chosen by
NDCG@10 on the past's own last 10 per user (`temporal_holdout(past, 10)`, the same
`evaluate_ranking`), then the model is trained again, same seed, on the whole past for that
many epochs. The refit lets the newest ratings, those nearest the test, be targets, as our
ranker's training sees all but its validation users' last 10.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.data.encoded import EncodedRatings
from models.data.splits import temporal_holdout
from models.data.table import IdMap, RatingTable
from models.evaluation.ranking import RankingTask, ScoreUsers, evaluate_ranking, ranking_task

PAD = 0  # token 0 is padding; item index i is token i + 1


@dataclass(frozen=True)
class SasrecConfig:
    """Kang & McAuley's architecture (2 blocks, 1 head, 200 items); width, dropout and step
    chosen on ML-100K's validation split (`python -m bench.ranker_seeds --tune`)."""

    hidden: int = 128
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.5
    max_length: int = 200  # the newest items a user is read by
    lr: float = 3e-3
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 10  # validation checks without gain before stopping
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Sasrec(nn.Module):
    """Item and learned position embeddings, pre-norm causal self-attention blocks, a final
    layer norm; positions count back from the newest item, so the newest always has the
    same position whatever the sequence's length."""

    def __init__(self, n_items: int, config: SasrecConfig):
        super().__init__()
        self.config = config
        d = config.hidden
        self.items = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        self.positions = nn.Embedding(config.max_length, d)
        # Embeddings of std d^-1/2: scaled by sqrt(d) at the input, unit entries; against a
        # layer-normed state (norm ~sqrt(d)), logits of std ~1 at the start.
        for table in (self.items, self.positions):
            nn.init.normal_(table.weight, std=d**-0.5)
        with torch.no_grad():
            self.items.weight[PAD].zero_()
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d, config.heads, dim_feedforward=d, dropout=config.dropout, batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            layer, config.blocks, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )

    @property
    def n_items(self) -> int:
        return self.items.num_embeddings - 1

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, L) tokens, newest last, left-padded with PAD -> (B, L, d) states; position p
        has read tokens 0..p, the last one the whole sequence."""
        length = tokens.shape[1]
        positions = torch.arange(self.config.max_length - length, self.config.max_length)
        x = self.items(tokens) * math.sqrt(self.config.hidden) + self.positions(positions)
        later = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        blocked = later[None] | (tokens == PAD)[:, None, :]  # (B, L, L): True = not read
        # A padding position reads itself: a row with nothing to read would give NaN.
        blocked &= ~torch.eye(length, dtype=torch.bool)
        mask = blocked.repeat_interleave(self.config.heads, dim=0)  # (B * heads, L, L)
        return self.blocks(self.dropout(x), mask=mask)

    def logits(self, states: Tensor) -> Tensor:
        """(..., d) -> (..., n_items): every item's score, its input embedding the weight."""
        return states @ self.items.weight[1:].T


@dataclass
class SasrecRun:
    """A trained model; `epochs` holds each epoch's training loss and, when validated,
    its NDCG@10; best_epoch is the last epoch when not validated."""

    model: Sasrec
    best_epoch: int
    epochs: list[dict]
    seconds: float


@dataclass
class SasrecFit:
    """The refitted model, the validation run that chose its epoch count, and both runs'
    time together."""

    model: Sasrec
    best_epoch: int
    validation_ndcg: float
    validation: list[dict]
    seconds: float


def user_sequences(table: RatingTable, item_ids: IdMap) -> dict[str, np.ndarray]:
    """Each user's items (dense indices) oldest first, ties in row order as in
    `temporal_holdout`; items `item_ids` lacks are dropped."""
    data = EncodedRatings.encode(table, item_ids)
    timelines = data.timelines
    return {
        user: timelines.items[timelines.offsets[u]: timelines.offsets[u + 1]]
        for u, user in enumerate(data.user_ids.ids)
    }


def left_padded(sequences: list[np.ndarray], max_length: int) -> Tensor:
    """(B, W) tokens of each sequence's newest max_length items, W the longest kept."""
    kept = [s[-max_length:] for s in sequences]
    width = max(len(s) for s in kept)
    tokens = np.zeros((len(kept), width), np.int64)
    for row, s in enumerate(kept):
        tokens[row, width - len(s):] = s + 1
    return torch.from_numpy(tokens)


@torch.inference_mode()
def next_item_scores(model: Sasrec, sequences: list[np.ndarray]) -> np.ndarray:
    """(B, n_items) scores of every item as each sequence's next; nothing is excluded."""
    model.eval()
    tokens = left_padded(sequences, model.config.max_length)
    return model.logits(model(tokens)[:, -1]).numpy()


def sasrec_scores(
    model: Sasrec, sequences: dict[str, np.ndarray], task: RankingTask
) -> ScoreUsers:
    """The task's users scored from their sequences (`evaluate_ranking` excludes the seen)."""

    def score(rows: list[int]) -> np.ndarray:
        return next_item_scores(model, [sequences[task.users[r]] for r in rows])

    return score


def train_sasrec(
    sequences: list[np.ndarray],
    n_items: int,
    config: SasrecConfig,
    epochs: int,
    validate: Callable[[Sasrec], float] | None = None,
) -> SasrecRun:
    """Trains for `epochs`, every position of each sequence's newest max_length + 1 items
    predicting the next; with `validate`, stops after `patience` epochs without gain and
    keeps the best epoch's weights."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    windows = [s[-(config.max_length + 1):] for s in sequences if len(s) >= 2]
    lengths = np.array([len(w) for w in windows])
    model = Sasrec(n_items, config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98))
    record: list[dict] = []
    best_state, best_ndcg, stale = None, -1.0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        total, targets_seen = 0.0, 0
        for batch in _length_bucketed(lengths, config.batch_size, rng):
            chunk = [windows[i] for i in batch]
            tokens = left_padded([w[:-1] for w in chunk], config.max_length)
            targets = left_padded([w[1:] for w in chunk], config.max_length) - 1
            real = targets >= 0  # (B, W): positions with a next item
            states = model(tokens)[real]  # (T, d), only where there is a target
            loss = F.cross_entropy(model.logits(states), targets[real])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * int(real.sum())
            targets_seen += int(real.sum())
        record.append({"epoch": epoch, "train_loss": total / targets_seen})
        if validate is None:
            continue
        ndcg = validate(model)
        record[-1]["val_ndcg"] = ndcg
        if ndcg > best_ndcg + 1e-4:
            best_ndcg, stale, best_state = ndcg, 0, copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    best_epoch = len(record)
    if best_state is not None:
        model.load_state_dict(best_state)
        best_epoch = max(record, key=lambda e: e["val_ndcg"])["epoch"]
    model.eval()
    return SasrecRun(model, best_epoch, record, time.perf_counter() - started)


def _length_bucketed(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of sequences of similar length, in random order: a batch is padded to its
    longest, and batches drawn at random all but double ML-100K's epoch time."""
    shuffled = rng.permutation(len(lengths))
    by_length = shuffled[np.argsort(lengths[shuffled], kind="stable")]
    batches = [by_length[s: s + batch_size] for s in range(0, len(by_length), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def validation_run(past: RatingTable, item_ids: IdMap, config: SasrecConfig) -> SasrecRun:
    """Trained on the past less each user's last 10, early-stopped by NDCG@10 on those 10:
    how `tuned` in bench/ranking_quality.py judges the other peers' settings."""
    fit, val = temporal_holdout(past, 10)
    task = ranking_task(fit, val, item_ids)
    sequences = user_sequences(fit, item_ids)

    def validate(model: Sasrec) -> float:
        return evaluate_ranking(task, sasrec_scores(model, sequences, task))["ndcg"]

    return train_sasrec(
        list(sequences.values()), len(item_ids), config, config.max_epochs, validate
    )


def fit_sasrec(past: RatingTable, item_ids: IdMap, config: SasrecConfig) -> SasrecFit:
    """Chooses the epoch count on the past's own last 10 per user, then refits on the
    whole past for that many epochs."""
    chosen = validation_run(past, item_ids, config)
    sequences = list(user_sequences(past, item_ids).values())
    refit = train_sasrec(sequences, len(item_ids), config, chosen.best_epoch)
    return SasrecFit(
        model=refit.model,
        best_epoch=chosen.best_epoch,
        validation_ndcg=max(e["val_ndcg"] for e in chosen.epochs),
        validation=chosen.epochs,
        seconds=chosen.seconds + refit.seconds,
    )
