"""One model version as served: the artifact, the items folded into it, the predictor over
both and the FAISS index. Immutable once built: a request reads the current `ServedModel`
once and is scored by that version from start to end, whatever is swapped meanwhile.

Folding an item in builds a new `ServedModel` of the same version (new item rows appended
after the trained ones; every trained weight shared, untouched) and upserts the item's
vector into the version's FAISS index, which every snapshot of that version shares and
filters to the items it knows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from models.artifact import Artifact
from models.data.table import IdMap, RatingScale
from models.history import History
from models.inference.fold_in import AttributePrior, FoldedItem, attribute_prior, with_items
from models.inference.predictor import Predictor, ScoreJob, ScoreResult
from service.catalogue import CatalogueMirror, Embedded, ItemCatalogue
from service.retrieval import ItemIndex
from service.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    version: str
    artifact: Artifact  # as trained: folded rows are never written into it
    predictor: Predictor
    catalogue: ItemCatalogue
    retrieval: ItemIndex
    folded: dict[str, FoldedItem]  # item id -> its rows, in index order
    prior: AttributePrior  # an item's rows from its genres: the n = 0 item, fold-in's prior

    @property
    def scale(self) -> RatingScale:
        return self.artifact.scale

    @property
    def rating_head(self) -> bool:
        """Whether this version predicts ratings (`predicted_rating`): False for an artifact
        trained on interactions alone, which holds no rating model."""
        return self.predictor.rated

    def with_folded(self, updates: dict[str, FoldedItem], mirror: CatalogueMirror,
                    settings: Settings, device: torch.device) -> ServedModel:
        """This version with `updates` folded in (new items appended, re-folded ones
        replaced in place). CPU work: the caller runs it off the event loop, then
        `index_folded` on it."""
        folded = {**self.folded, **updates}
        return _assemble(self.artifact, folded, mirror, settings, device, self.retrieval,
                         self.prior)

    def index_folded(self, item_ids: list[str]) -> None:
        """Upserts these items' vectors into the version's FAISS index (no rebuild). On the
        event loop's thread, where every search runs."""
        indices = self.catalogue.indices(item_ids)
        vectors = self.predictor.item_vectors()
        self.retrieval.upsert(indices, vectors.embeddings[indices], vectors.bias)


def serve(artifact: Artifact, folded: dict[str, FoldedItem], mirror: CatalogueMirror,
          settings: Settings, device: torch.device) -> ServedModel:
    """A version ready to serve: models on the device, FAISS built, one job scored (warm)."""
    genres = artifact.catalogue.genres_of(artifact.item_ids.ids)
    prior = attribute_prior(artifact.rating_model, artifact.ranking_model, genres)
    served = _assemble(artifact, folded, mirror, settings, device, None, prior)
    job = ScoreJob(History.empty(), np.arange(min(len(served.catalogue), 16)), "recommended",
                   top=3, explain=True)
    served.predictor.run([job])
    return served


def _assemble(artifact: Artifact, folded: dict[str, FoldedItem], mirror: CatalogueMirror,
              settings: Settings, device: torch.device, retrieval: ItemIndex | None,
              prior: AttributePrior) -> ServedModel:
    models = artifact
    if folded:
        genres = [item.genres if (item := mirror.get(i)) else [] for i in folded]
        rating, ranking = with_items(artifact.rating_model, artifact.ranking_model,
                                     list(folded.values()), genres)
        models = replace(artifact, rating_model=rating, ranking_model=ranking)
    predictor = Predictor(models, device, settings.like_weight, settings.recommend_depth)
    sources: list[Embedded] = ["trained"] * len(artifact.item_ids)
    sources += [f.source for f in folded.values()]  # type: ignore[misc]
    ids = IdMap(artifact.item_ids.ids + list(folded))
    catalogue = ItemCatalogue(ids, sources, mirror, artifact.version)
    if retrieval is None:
        vectors = predictor.item_vectors()
        retrieval = ItemIndex(vectors.embeddings, vectors.bias, artifact.item_index,
                              settings.retrieval_probes, artifact.item_neighbours)
    return ServedModel(artifact.version, artifact, predictor, catalogue, retrieval, folded,
                       prior)


def score_batch(jobs: list[tuple[Predictor, ScoreJob]]) -> list[ScoreResult]:
    """The micro-batcher's work: each job with the predictor of the version it was read
    under (a batch that spans a swap holds two), one `Predictor.run` per version."""
    results: list[ScoreResult | None] = [None] * len(jobs)
    groups: dict[int, list[int]] = {}
    for position, (predictor, _) in enumerate(jobs):
        groups.setdefault(id(predictor), []).append(position)
    for members in groups.values():
        predictor = jobs[members[0]][0]
        for position, result in zip(
            members, predictor.run([jobs[m][1] for m in members]), strict=True
        ):
            results[position] = result
    return results  # type: ignore[return-value]

