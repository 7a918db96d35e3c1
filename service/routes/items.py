"""Item metadata and FAISS neighbours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import ItemIdPath, KnownQuery, ReadAccess, RecommenderDep
from service.http_errors import ERROR_RESPONSES
from service.schemas import Item, SimilarItem, SimilarResponse

router = APIRouter(
    prefix="/v1/items",
    tags=["items"],
    dependencies=[KnownQuery, ReadAccess],
    responses=ERROR_RESPONSES,
)


@router.get("/{item_id}", response_model=Item)
async def get_item(item_id: ItemIdPath, rec: RecommenderDep) -> Item:
    rec.item_index(item_id)
    catalogue = rec.artifact.catalogue
    return Item(
        item_id=item_id, title=catalogue.title(item_id), genres=catalogue.genres.get(item_id, [])
    )


@router.get("/{item_id}/similar", response_model=SimilarResponse)
async def similar(
    item_id: ItemIdPath, rec: RecommenderDep, k: Annotated[int, Query(ge=1)] = 10
) -> SimilarResponse:
    """Nearest items by cosine similarity of their structure embeddings."""
    neighbours, similarity = rec.items.similar(rec.item_index(item_id), rec.check_k(k))
    ids, catalogue = rec.artifact.item_ids, rec.artifact.catalogue
    return SimilarResponse(
        item_id=item_id,
        items=[
            SimilarItem(
                item_id=ids.ids[n],
                title=catalogue.title(ids.ids[n]),
                genres=catalogue.genres.get(ids.ids[n], []),
                similarity=float(s),
            )
            for n, s in zip(neighbours, similarity, strict=True)
        ],
        model_version=rec.version,
    )
