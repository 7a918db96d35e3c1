"""Domain results to response models: the one place routes turn them into JSON shapes."""

from __future__ import annotations

from service.explanations import Reason
from service.recommender import Ranked
from service.schemas import Because, RankedItem, RatingIn
from service.validation import NewRating


def new_ratings(ratings: list[RatingIn]) -> list[NewRating]:
    """Request ratings (`RatingIn`) as the recommender takes them."""
    return [NewRating(r.item_id, r.rating, r.timestamp) for r in ratings]


def because(reasons: list[Reason]) -> list[Because]:
    return [
        Because(
            item_id=r.item.item_id,
            title=r.item.title,
            rating=r.rating,
            attention=r.attention,
            contribution=r.contribution,
        )
        for r in reasons
    ]


def ranked_items(ranked: list[Ranked]) -> list[RankedItem]:
    return [
        RankedItem(
            item_id=r.item.item_id,
            title=r.item.title,
            score=r.score,
            predicted_rating=r.predicted_rating,
            because=None if r.reasons is None else because(r.reasons.because),
            despite=None if r.reasons is None else because(r.reasons.despite),
        )
        for r in ranked
    ]
