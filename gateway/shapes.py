"""Every request body, query and response of the HTTP API, declared once.

Requests are pydantic models: they validate what a caller sends (every problem at once, each
with its field's path and a code) and they are what the OpenAPI document's request schemas
are made from. Responses are the storage's read models (storage/models.py) and the typed
dicts below; the API writes them with orjson as they are, and their schemas are made from
the same declarations, so the document cannot say something the server does not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from gateway.domain.records import FoStatus, PartnerOrderStatus, parse_iso, utc_iso
from gateway.names import InvoiceTiming
from gateway.names import RecordWrite as RecordWriteName

# The id an API caller may choose (an FO, a line): letters and digits first, then also
# . _ : - ; 128 at most. `$` is the end of the text (no newline before it) in the Rust
# regex engine pydantic validates with, as in the ECMA 262 the document's readers use.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"\S")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
FieldName = Annotated[str, StringConstraints(pattern=FIELD_NAME_PATTERN)]
MAX_QUANTITY = 10**9


def _integral(value: Any) -> Any:
    """JSON Schema's integer includes 2.0: take it as 2 (and 2.5 stays refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# (the bounds before the validator: after it, pydantic writes them into the schema raw)
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), BeforeValidator(_integral)]
MAX_LINES = 1000
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def _timestamp(value: str) -> str:
    try:
        return utc_iso(parse_iso(value))
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "invalid_timestamp", "an ISO 8601 timestamp with an offset, e.g."
            " 2026-12-01T10:00:00Z, between years 1 and 9999") from None


Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}),
                      AfterValidator(_timestamp)]


class Body(BaseModel):
    """A JSON request body: exactly the declared fields, each of its declared type."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """Query parameters: text converted as declared, any other name refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# requests

class LineRequest(Body):
    sku: Sku
    quantity: Quantity
    line_id: Id | None = Field(None, description="Unique in the FO; default: its position")


class ExternalRef(Body):
    kind: Literal["order_number", "partner_order_id"]
    value: Text


class Address(Body):
    """Where the order ships. Every key is one each connector maps to its partner's field;
    another key is refused rather than dropped."""

    name: Text | None = None
    company: Text | None = None
    street1: Text | None = None
    street2: Text | None = None
    street3: Text | None = None
    city: Text | None = None
    state: Text | None = None
    postal_code: Text | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        None, description="ISO 3166-1 alpha-2")
    phone: Text | None = None
    residential: bool | None = None


ADDRESS_FIELDS: tuple[str, ...] = tuple(Address.model_fields)
CustomValue = Annotated[str, StringConstraints(max_length=4096)] | int | float | bool


class FulfillmentOrderRequest(Body):
    id: Id | None = Field(None, description="Client-chosen; makes the call idempotent")
    channel: Text | None = Field(None, description="A configured channel's name")
    order_number: Text | None = None
    lines: Annotated[list[LineRequest], Field(min_length=1, max_length=MAX_LINES)]
    ship_to: Address | None = None
    custom_fields: dict[FieldName, CustomValue] = Field(
        default_factory=dict, description="Written to the partner fields the channel names",
        json_schema_extra={"propertyNames": {"pattern": FIELD_NAME_PATTERN}, "maxProperties": 64},
        max_length=64)
    external_refs: list[ExternalRef] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _unique_line_ids(self) -> FulfillmentOrderRequest:
        seen: set[str] = set()
        for i, line in enumerate(self.lines):
            line_id = line.line_id or str(i + 1)
            if line_id in seen:
                raise ValidationError.from_exception_data("FulfillmentOrderRequest", [{
                    "type": PydanticCustomError("duplicate_value", "a line_id already used"),
                    "loc": ("lines", i, "line_id"), "input": line_id}])
            seen.add(line_id)
        return self


class ChannelOrderRequest(FulfillmentOrderRequest):
    """An invoiced order (invoice first): the FO of this channel, and the invoice's id."""

    invoice_id: Text


class MatchRequest(Body):
    fulfillment_order_ids: Annotated[list[Id], Field(min_length=1, max_length=100)]


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    """Fields are stored and sent as JSON: an integer past 64 bits cannot be."""
    try:
        orjson.dumps(value)
    except TypeError:
        raise PydanticCustomError(
            "invalid_value", "numbers must fit in 64 bits (write larger ones as strings)") from None
    return value


PartnerFields = Annotated[dict[str, Any], AfterValidator(_storable)]


class RecordWrite(Body):
    fields: PartnerFields = Field(min_length=1, description="The partner's fields to write,"
                                                            " as it names them")


class ArchiveRequest(Body):
    fields: PartnerFields = Field(default_factory=dict)


class InventoryLevel(Body):
    """One stock level: how many of a SKU a warehouse has, now or from a date on."""

    warehouse: Text = Field(description="the partner's warehouse: its id, code or name")
    sku: Text
    quantity: int = Field(ge=0, le=10_000_000)
    date: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = Field(
        None, description="YYYY-MM-DD: future stock available from then; none: available now")
    prebook: bool = Field(False, description="future stock sold ahead (prebook), with its date")

    @model_validator(mode="after")
    def _prebook_has_a_date(self) -> InventoryLevel:
        if self.prebook and self.date is None:
            raise PydanticCustomError("invalid_value", "prebook stock needs its date")
        return self


class ReplenishmentRequest(Body):
    connector: Name | None = Field(None, description="the connector to send to; none: every"
                                                     " enabled connector that takes inventory")
    levels: Annotated[list[InventoryLevel], Field(min_length=1, max_length=50_000)]


# queries

# next_cursor as the API hands it out: URL-safe base64 (storage.sql.views.encode_cursor)
Cursor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,1024}$")]


class Paging(Query):
    cursor: Cursor | None = Field(None, description="next_cursor of the page before")
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT


class DeadLetterWhere(BaseModel):
    """Which dead letters (every field narrows; none: all of them)."""

    name: Name | None = Field(None, description="a connector's or subscriber's name: where"
                                                " it came from or was going")
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="the event's or message's kind, e.g. push_order")
    error: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="a piece of the error text, any case")
    since: Timestamp | None = Field(None, description="failed at or after")
    source: Literal["inbox", "outbox"] | None = None


class DeadLetterQuery(Paging, DeadLetterWhere):
    pass


class ReplayRequest(Body, DeadLetterWhere):
    pass


class DiscardRequest(Body):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        None, description="why it is given up (kept with it)")


class FulfillmentOrderQuery(Paging):
    status: FoStatus | None = None
    updated_since: Timestamp | None = None


class ShipmentQuery(Paging):
    fulfillment_order_id: Id | None = None


class RecordQuery(Paging):
    updated_since: Timestamp | None = None


class InboundShipmentQuery(Paging):
    connector: Name | None = None
    status: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,32}$")] | None = Field(
        None, description="only shipments in this status (the partner's: SHIPPED, RECEIVING,"
                          " CLOSED, ...)")
    updated_since: Timestamp | None = Field(None, description="changed at the gateway since")


class InboundShipmentOneQuery(Query):
    connector: Name | None = Field(None, description="whose shipment, when two connectors"
                                                     " have one of this id")


class PartnerOrderQuery(Paging):
    connector: Name | None = None
    unclaimed: bool = Field(False, description="only the orders no channel takes")
    held: bool = Field(False, description="only the orders held: the connector could not"
                                          " turn them into FO lines (hold_reason says why)")


class PollQuery(Query):
    feed: Name | None = Field(None, description="only this feed (404 if it has none such,"
                                                " 409 if the feed is turned off)")


class NoQuery(Query):
    pass


# responses the API builds itself (the storage's read models are the others)

class Problem(TypedDict):
    field: str  # a path into the request: lines[0].quantity, or the query parameter's name
    code: Literal["missing_field", "unknown_field", "wrong_type", "invalid_value",
                  "invalid_json", "repeated"]
    message: str


class ErrorDetail(TypedDict):
    code: str
    message: str
    problems: NotRequired[list[Problem]]


class Error(TypedDict):
    error: ErrorDetail


class Page(TypedDict):
    items: list[Any]
    next_cursor: str | None


class FeedView(TypedDict):
    name: str
    description: str
    enabled: bool
    interval_minutes: float
    cursor: str | None
    last_poll_at: str | None
    last_result: dict[str, Any] | None
    last_error: str | None
    last_error_at: str | None
    running: bool  # a process holds this feed's lease
    lease_owner: str | None  # which process (replica)
    lease_until: str | None
    paused_by: str | None  # an operator paused it (api, or console:<name>): not polled
    paused_at: str | None


class DestinationView(TypedDict):
    destination: str  # connector:<name> or subscriber:<name>
    paused_by: str | None  # nothing is sent there while paused; its messages wait in order
    paused_at: str | None
    oldest_pending_age_seconds: float | None  # the oldest message waiting to go there


class RecordKindView(TypedDict):
    name: str
    writes: list[RecordWriteName]
    description: str


class ConnectorView(TypedDict):
    name: str
    type: str
    enabled: bool
    webhooks: NotRequired[bool]
    feeds: NotRequired[list[FeedView]]
    operations: NotRequired[list[str]]
    unsupported: NotRequired[dict[str, str]]  # operation -> why not (asked for: 501)
    record_kinds: NotRequired[list[RecordKindView]]
    rate_limit: NotRequired[dict[str, Any]]


class OmsView(TypedDict):
    connector: str
    store_id: int | str | None
    delay_minutes: float


class ChannelView(TypedDict):
    name: str
    warehouse_group: str | None
    internal: bool
    description: str
    tags: list[str]
    oms: OmsView | None
    push_fulfillment_updates: bool
    custom_fields: dict[str, str]  # gateway field -> the partner's field (dotted)
    invoice_timing: InvoiceTiming | None
    source_connector: str | None


class FeedPollResult(TypedDict, total=False):
    records: int
    new_events: int
    cursor: str | None


class PollResultView(TypedDict):
    connector: str
    records: int
    new_events: int
    feeds: dict[str, dict[str, Any]]


class RecordView(TypedDict):
    id: str
    connector: str
    kind: str
    fields: dict[str, Any]
    updated_at: str
    archived: bool


class PartnerOrderLineView(TypedDict):
    sku: str
    quantity: int
    partner_line_id: str | None


class PartnerOrderView(TypedDict):
    connector: str
    id: str
    order_number: str | None
    status: PartnerOrderStatus
    lines: list[PartnerOrderLineView]
    ship_to: dict[str, Any]
    customer_ref: str | None
    partner_updated_at: str | None
    fulfillment_order_id: str | None  # null: no channel takes these orders, or held
    hold_reason: str | None  # why no FO is made from this version (a size with no SKU, say)
    recorded_at: str
    raw: dict[str, Any]


class Queued(TypedDict):
    id: str  # the outbox message, outbox-N
    status: Literal["pending"]
    operation: str


class InventoryQueued(TypedDict):
    received: int  # levels in the request
    lines: int  # after consolidation: one per warehouse, date and SKU (the last level wins)
    messages: list[Queued]  # one per connector


class DeadLetterAction(TypedDict):
    id: str
    status: Literal["replaying", "discarded"]


class ReplayJobView(TypedDict):
    id: str
    state: Literal["running", "finished"]
    filter: dict[str, Any]
    by: str
    started_at: str
    finished_at: str | None
    matched: int | None  # null until counted
    replayed: int
    gone: list[str]  # matched, but replayed or discarded by someone else meanwhile
    error: str | None


class Health(TypedDict):
    status: Literal["ok"]


class Readiness(TypedDict):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]
    storage_error: NotRequired[str]  # why the database cannot be read and written


def problems(error: ValidationError, prefix: str = "") -> list[Problem]:
    """pydantic's errors as the API says them: every one, each with a path and a code."""
    found: list[Problem] = []
    for item in error.errors(include_url=False):
        path = prefix
        for part in item["loc"]:
            if isinstance(part, int) or part == "[key]":
                path += f"[{part}]" if isinstance(part, int) else " (the key)"
            elif str(part).isidentifier():
                path += f".{part}" if path else str(part)
            else:  # a key of a free-form object: quoted, so the path stays readable
                path += f"[{orjson.dumps(part).decode()}]"
        kind = item["type"]
        code = ("missing_field" if kind == "missing" else
                "unknown_field" if kind == "extra_forbidden" else
                "invalid_json" if kind == "json_invalid" else
                "wrong_type" if kind.endswith(("_type", "_parsing")) else
                "invalid_value")
        found.append({"field": path or "body", "code": code,  # type: ignore[typeddict-item]
                      "message": _message(item)})
    return found


def _message(item: Mapping[str, Any]) -> str:
    if item["type"] == "extra_forbidden":
        return "not a field this accepts"
    if item["type"] == "missing":
        return "required"
    return str(item["msg"])
