"""The training recipes `because train` offers, and command-line overrides of them.

`fast`, the default, fits the demo's budget (`make serve` answering within minutes of a
fresh clone on 2 cores): the rating model takes a three times larger step on twice the
batch and reaches its validation error in half the epochs, stops at the first epoch
without gain (its validation error falls smoothly to a minimum, then rises), and is kept
as it stopped, not retrained on every rating for that many epochs: the retraining took 40
of the first run's seconds and bought u1 RMSE 0.9147 against 0.9169. The ranker
takes the larger step too, but its validation NDCG can pause for an epoch before climbing
again (on the recommendation benchmark's training split: 0.1394, 0.1394, then up to 0.1587
at epoch 6), so it waits two epochs: one cut it short at epoch 2 and cost the
recommendations a tenth of their liked NDCG@10. It stops by its eighth epoch: over the
rating model with its opinion lean, the demo's ranker kept finding a new best every
other epoch, up to epoch 13 (0.1751 against 0.1644 at epoch 7), 208 s that would have
taken the first run past its 240 s. `quality` is the slower recipe, the dataclasses' own
defaults. Both measured on MovieLens-100K in bench/findings.md.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from models.training.ranking import RankingTrainConfig
from models.training.rating import RatingTrainConfig

Config = TypeVar("Config")

PRESETS: dict[str, tuple[RatingTrainConfig, RankingTrainConfig]] = {
    "fast": (
        RatingTrainConfig(lr=3e-3, batch_size=512, patience=1, refit=False),
        RankingTrainConfig(lr=3e-3, patience=2, max_epochs=8),
    ),
    "quality": (RatingTrainConfig(), RankingTrainConfig()),
}


def given(config: Config, **overrides: object) -> Config:
    """A copy of `config` with the fields whose override is not None replaced."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[type-var]
