"""The catalogue (create, update, retire, list, look up) and FAISS neighbours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from service import examples
from service.deps import ItemIdPath, KnownQuery, ReadAccess, RecommenderDep, WriteAccess
from service.http_errors import ERROR_RESPONSES
from service.item_store import Item as StoredItem
from service.schemas import (
    ID_PATTERN,
    CatalogueItem,
    CataloguePage,
    Item,
    ItemPut,
    SimilarItem,
    SimilarResponse,
)

router = APIRouter(
    prefix="/v1/items", tags=["items"], dependencies=[KnownQuery], responses=ERROR_RESPONSES
)


@router.get("", response_model=CataloguePage, dependencies=[ReadAccess])
async def list_items(
    rec: RecommenderDep,
    q: Annotated[str | None, Query(max_length=200, description="part of the title, any "
                                  "case", examples=["star"])] = None,
    cursor: Annotated[str | None, Query(pattern=ID_PATTERN, description="the previous "
                                        "page's `next_cursor`")] = None,
    limit: Annotated[int, Query(ge=1, description="items per page: 1 to BECAUSE_MAX_K "
                                "(default 100)")] = 50,
) -> CataloguePage:
    """Catalogue pages in id order; `q` keeps titles containing it (any case). Pass the
    answer's `next_cursor` back for the next page; null means the end."""
    page = await rec.items(q, cursor, limit)
    return CataloguePage(
        items=[Item(item_id=i.item_id, title=i.title, genres=i.genres) for i in page.items],
        next_cursor=page.next_cursor,
    )


@router.put(
    "/{item_id}", response_model=CatalogueItem, status_code=201, dependencies=[WriteAccess],
    responses={200: {"model": CatalogueItem, "description": "updated (or revived)"}},
)
async def put_item(
    item_id: ItemIdPath,
    body: Annotated[ItemPut, Body(openapi_examples=examples.ITEM_PUT)],
    rec: RecommenderDep,
    response: Response,
) -> CatalogueItem:
    """Creates (201) or updates (200) an item; a retired item put again is revived. Until
    it has raters the model places it from its genres; from its first raters on, fold-in
    gives it rows of its own in both models (no retraining)."""
    created = await rec.put_item(StoredItem(item_id, body.title, body.genres, body.attributes))
    response.status_code = 201 if created else 200
    return await _catalogue_item(rec, item_id)


@router.delete("/{item_id}", status_code=204, dependencies=[WriteAccess])
async def retire_item(item_id: ItemIdPath, rec: RecommenderDep) -> Response:
    """Retires an item: never recommended, retrieved or similar again; kept in histories
    and explanations, and its ratings are still stored."""
    await rec.retire_item(item_id)
    return Response(status_code=204)


@router.get("/{item_id}", response_model=CatalogueItem, dependencies=[ReadAccess])
async def get_item(item_id: ItemIdPath, rec: RecommenderDep) -> CatalogueItem:
    return await _catalogue_item(rec, item_id)


@router.get("/{item_id}/similar", response_model=SimilarResponse, dependencies=[ReadAccess])
async def similar(
    item_id: ItemIdPath,
    rec: RecommenderDep,
    k: Annotated[int, Query(ge=1, description="items: 1 to BECAUSE_MAX_K (default 100)")] = 10,
) -> SimilarResponse:
    """Nearest items by cosine similarity of the ranking model's item embeddings."""
    found = rec.similar(item_id, k)
    return SimilarResponse(
        item_id=item_id,
        items=[
            SimilarItem(item_id=i.item_id, title=i.title, genres=i.genres, similarity=s)
            for i, s in found.items
        ],
        model_version=found.version,
    )


async def _catalogue_item(rec: RecommenderDep, item_id: str) -> CatalogueItem:
    entry = await rec.item(item_id)
    item = entry.item
    return CatalogueItem(
        item_id=item.item_id, title=item.title, genres=item.genres,
        attributes=item.attributes, retired=item.retired, embedded=entry.embedded,
        model_version=rec.version,
    )
