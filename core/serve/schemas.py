"""The storefront API's request and response shapes (pydantic, for FastAPI's validation and its OpenAPI
schema). The answers themselves are built in ``core.serve.storefront``; these only describe them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.serve.visit import MAX_EVENTS, VISIT_EVENT_TYPES

RowId = Literal[
    "for_you", "interest_1", "interest_2", "interest_3", "trending", "deals", "similar", "search"
]  # interest_n: the rows per interest ("Because you viewed keyboards"), heaviest interest first
EventType = Literal[VISIT_EVENT_TYPES]  # type: ignore[valid-type]
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # any id without control characters


class ReasonOut(BaseModel):
    code: str = Field(description="stable reason code, e.g. 'model', 'pin.pinned', 'fairness.swap'")
    label: str = Field(description="the badge text for people")
    rule_id: str | None = Field(description="the rule that gave the reason; null for the model")
    params: dict = Field(description="what the sentence of the code is formatted with")


class SlotOut(BaseModel):
    row: RowId
    position: int = Field(description="1-based place within its row")
    item_id: str
    title: str
    price: float | None
    category: str | None
    promoted: bool = Field(description="under a promotion at the release's shop clock")
    score: float | None = Field(description="the model's score (similarity for similar items)")
    reasons: list[ReasonOut]


class RowOut(BaseModel):
    row: RowId
    title: str


class HomepageOut(BaseModel):
    release_id: int = Field(description="the release this answer was computed from")
    user_id: str
    known_shopper: bool = Field(description="the release's snapshot knows this shopper")
    events_applied: int = Field(description="events of this visit taken into account")
    source: str = Field(description="the model that scored the list, or the cold-start fallback")
    rows: list[RowOut]
    slots: list[SlotOut] = Field(description="every row's slots, row by row, in display order")
    conflicts: list[ReasonOut] = Field(description="rules that could not be honoured on this homepage")


class ListOut(BaseModel):
    release_id: int
    slots: list[SlotOut]


class SimilarOut(ListOut):
    item_id: str
    title: str


class SearchOut(ListOut):
    query: str
    user_id: str | None


class VisitEventIn(BaseModel):
    item_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    event_type: EventType = "view"
    ts: datetime | None = Field(
        default=None, description="when it happened (ISO 8601; no offset: UTC); missing: now, in list order"
    )


class VisitIn(BaseModel):
    events: list[VisitEventIn] = Field(
        default_factory=list,
        max_length=MAX_EVENTS,
        description=f"this visit's events not yet in the release's snapshot, oldest first (at most {MAX_EVENTS})",
    )


class ReleaseRuleSet(BaseModel):
    id: str
    version: int
    rules: int


class ReleaseModel(BaseModel):
    run_id: str | None
    kind: str | None
    label: str


class Upcoming(BaseModel):
    release_id: int
    starts_at: str


class ReleaseOut(BaseModel):
    release_id: int
    kind: str
    content_hash: str
    published_at: str | None
    starts_at: str | None
    rollback_of: int | None
    rule_set: ReleaseRuleSet
    model: ReleaseModel
    shop_clock: str
    items: int
    shoppers: int
    loaded_seconds: float
    upcoming: list[Upcoming]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "no_release"]
    release_id: int | None
    error: str | None


class ErrorOut(BaseModel):
    error: str = Field(description="not_found | invalid_request | no_release | unauthorized | internal")
    message: str
