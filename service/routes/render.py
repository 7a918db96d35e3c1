"""Domain results to response models, shared by the routes."""

from __future__ import annotations

from service.recommender import Ranked, Recommender
from service.schemas import RankedItem


def ranked_items(rec: Recommender, ranked: list[Ranked]) -> list[RankedItem]:
    ids, catalogue = rec.artifact.item_ids, rec.artifact.catalogue
    return [
        RankedItem(
            item_id=ids.ids[r.item],
            title=catalogue.title(ids.ids[r.item]),
            score=r.score,
            predicted_rating=r.predicted_rating,
            because=r.because,
        )
        for r in ranked
    ]
